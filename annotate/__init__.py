"""Annotation and evaluation toolkit for news text: Label Studio, gold, spaCy, Hugging Face."""

__version__ = "0.1.0"
