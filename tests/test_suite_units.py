"""How `make test` shares its work between two workers (tests/conftest.py): one worker per test server,
modules whole, a ``longest`` test first and alone; and that pytest-xdist really runs it that way."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT, pytest_collection_modifyitems, schedule_rank, work_unit

pytest_plugins = ["pytester"]


@dataclass
class FakeItem:
    nodeid: str
    fixturenames: list[str] = field(default_factory=list)
    marks: tuple[str, ...] = ()

    def get_closest_marker(self, name: str):
        return getattr(pytest.mark, name).mark if name in self.marks else None


def test_a_servers_tests_are_one_unit_whatever_their_module():
    sqlite = [FakeItem("tests/test_a.py::test_x", ["local_studio"]), FakeItem("tests/test_b.py::t", ["local_studio"])]
    # test_studio_postgres.py's tests ask for local_studio, which there is the PostgreSQL server
    on_postgres = FakeItem("tests/test_studio_postgres.py::t", ["local_studio", "postgres_studio"])
    assert {work_unit(item) for item in sqlite} == {"group studio"}
    assert work_unit(on_postgres) == "group postgres"
    assert work_unit(FakeItem("tests/test_workers.py::test_pool")) == "group ray"
    assert work_unit(FakeItem("tests/test_train.py::test_x")) == "tests/test_train.py"


def test_the_longest_test_goes_first_and_alone_and_modules_stay_together():
    items = [
        FakeItem("tests/test_a.py::plain"),
        FakeItem("tests/test_b.py::trains", marks=("slow",)),
        FakeItem("tests/test_b.py::quick"),
        FakeItem("tests/test_c.py::server", ["local_studio"]),
        FakeItem("tests/test_c.py::no_server"),
        FakeItem("tests/test_d.py::other"),
        FakeItem("tests/test_d.py::annotate_run", marks=("longest", "slow")),
        FakeItem("tests/test_studio_postgres.py::t", ["local_studio", "postgres_studio"]),
    ]
    pytest_collection_modifyitems(None, items)
    assert [item.nodeid for item in items] == [
        "tests/test_d.py::annotate_run",
        "tests/test_d.py::other",
        "tests/test_studio_postgres.py::t",
        "tests/test_c.py::server",
        "tests/test_c.py::no_server",
        "tests/test_b.py::trains",
        "tests/test_b.py::quick",
        "tests/test_a.py::plain",
    ]
    assert work_unit(items[0]) == "tests/test_d.py::annotate_run" and work_unit(items[1]) == "tests/test_d.py"
    assert [schedule_rank(item) for item in items[:3]] == [0, 5, 1]


def test_two_workers_start_each_server_once_and_the_longest_test_first(pytester):
    """A small suite under `-n 2 --dist loadgroup` with this project's hooks: a session "server"
    asked for by tests in three modules is set up once, and the ``longest`` test starts first."""
    pytester.makeconftest(
        """
        import os, time
        import pytest
        from tests.conftest import (
            pytest_collection_modifyitems, pytest_configure, pytest_configure_node, pytest_unconfigure,
            pytest_xdist_make_scheduler,
        )

        def log(line):
            with open(os.environ["UNITS_LOG"], "a") as f:
                f.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {line}\\n")

        @pytest.fixture(scope="session")
        def local_studio():
            log("server up")
            return "server"

        @pytest.fixture
        def work(request):
            log(f"start {request.node.name}")
            time.sleep(0.3)
        """
    )
    for module in ("alpha", "beta", "gamma"):
        pytester.makepyfile(
            **{
                f"test_{module}": f"""
                def test_{module}_server_1(local_studio, work): pass
                def test_{module}_server_2(local_studio, work): pass
                def test_{module}_plain(work): pass
                """
            }
        )
    pytester.makepyfile(
        test_zeta="""
        import pytest
        @pytest.mark.longest
        def test_zeta_longest(work): pass
        """
    )
    log = pytester.path / "units.log"
    environment = {"UNITS_LOG": str(log), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=10)
    lines = log.read_text().splitlines()
    assert sum(line.endswith("server up") for line in lines) == 1, lines
    server_worker = next(line.split()[0] for line in lines if line.endswith("server up"))
    starts = [line.split() for line in lines if " start " in line]
    assert {worker for worker, _, name in starts if "_server_" in name} == {server_worker}
    first = {}
    for worker, _, name in starts:
        first.setdefault(worker, name)
    assert "test_zeta_longest" in first.values(), starts
    assert re.fullmatch(r"gw[01]", server_worker)
