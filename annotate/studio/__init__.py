"""Label Studio: ``client`` speaks its API (the only module that does), one module per workflow.

``push`` and ``pull`` move articles in and annotations out, ``review`` sends review sets, ``link``
connects our ML backend, ``predictions`` keeps a project's predictions in step for them, and
``local`` runs the local server of ``annotate studio up``. Import the module you need.
"""
