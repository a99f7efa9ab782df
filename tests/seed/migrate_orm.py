"""migrate-orm (`RUN_PAUSED`): paused by a person, an open `no_progress_sessions` breaker and a
pending budget raise.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from longrun.scheduler.guards.breakers import no_progress_trip
from longrun.store import log, runs
from longrun.store.models import RunState
from seed.calls import bash_call, commit_call, read_call, write_call
from seed.ids import APPROVAL_BUDGET, OPEN_BREAKER, RUN_PAUSED, SEED_NOW, WHO
from seed.live import check_verdict, rubric_verdict
from seed.story import Story
from seed.textstats_files import pytest_ok

ORM_SPEC = """\
name = "migrate-orm"
goal = '''
Move the billing service's data access from hand-written SQL to SQLAlchemy 2.0 ORM models, with
the existing test suite passing and no query in billing/ built by string formatting.
'''
workspace = "~/billing-service"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "45m"
wrap_up = "5m"

[schedule]
mode = "back_to_back"
cooldown = "5m"

[budget]
usd = 1.2
per_session_usd = 0.6

[breakers]
no_progress_sessions = 2

[judge]
model = "claude-haiku-5-5"

[[features]]
id = "models"
description = "billing/models.py declares Invoice, Payment and Customer as mapped classes."
check = "python -m pytest -q tests/test_models.py"

[[features]]
id = "repositories"
description = "The invoice and payment repositories query through the ORM and their tests pass."
check = "python -m pytest -q tests/test_invoices.py tests/test_payments.py"

[[features]]
id = "no-raw-sql"
description = "No query in billing/ is built with an f-string or % formatting."
check = "! grep -rnE 'execute\\\\((f\\"|\\"[^\\"]*%)' billing/"

[[features]]
id = "migration-notes"
description = "MIGRATION.md says what changed for the people who call the service."
rubric = "MIGRATION.md lists every changed public function with its old and new signature."
"""

REPO_SQL = """\
def invoices_for(conn, customer_id):
    return conn.execute(f"SELECT * FROM invoice WHERE customer_id = {customer_id}").fetchall()
"""

MODELS = """\
from datetime import date
from decimal import Decimal

from sqlalchemy import ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    invoices: Mapped[list["Invoice"]] = relationship(back_populates="customer")


class Invoice(Base):
    __tablename__ = "invoice"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    issued_on: Mapped[date]
    total: Mapped[Decimal]
    customer: Mapped[Customer] = relationship(back_populates="invoices")


class Payment(Base):
    __tablename__ = "payment"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    amount: Mapped[Decimal]
"""

PYTEST_INVOICES_FAIL = """\
....F..F                                                                 [100%]
=================================== FAILURES ===================================
__________________________ test_overdue_invoices_sorted __________________________
E       sqlalchemy.exc.ArgumentError: Textual SQL expression 'issued_on < :cutoff' should be
E       explicitly declared as text('issued_on < :cutoff')
________________________ test_payment_totals_per_customer ________________________
E       AssertionError: assert Decimal('120.5') == Decimal('240.50')
=========================== short test summary info ============================
FAILED tests/test_invoices.py::test_overdue_invoices_sorted - sqlalchemy.exc.ArgumentError
FAILED tests/test_payments.py::test_payment_totals_per_customer - AssertionError
2 failed, 6 passed in 0.84s"""


def write_migrate_orm(story: Story) -> None:
    day = SEED_NOW.replace(hour=0)
    run = story.create_run(
        RUN_PAUSED,
        ORM_SPEC,
        when=day + timedelta(hours=2, minutes=4, seconds=40),
        first_files={
            "billing/__init__.py": "",
            "billing/invoices.py": REPO_SQL,
            "tests/test_models.py": "from billing.models import Customer, Invoice, Payment\n",
        },
        first_message="Billing service as it stands before the ORM",
    )
    run.context_tokens = 46_000
    rubric = run.spec.features[3].rubric or ""
    story.start(run, day + timedelta(hours=2, minutes=5))
    no_raw = run.spec.features[2].check or ""

    def verdicts(
        models: str, repos: str, raw_sql: str, base: str, size: int
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        return [
            (
                "models",
                "command",
                models,
                check_verdict(
                    "python -m pytest -q tests/test_models.py",
                    models,
                    pytest_ok(4, "0.31")
                    if models == "pass"
                    else "E   ModuleNotFoundError: No module named 'billing.models'",
                    0.9,
                ),
            ),
            (
                "repositories",
                "command",
                repos,
                check_verdict(run.spec.features[1].check or "", repos, PYTEST_INVOICES_FAIL, 1.6),
            ),
            (
                "no-raw-sql",
                "command",
                raw_sql,
                check_verdict(
                    no_raw,
                    raw_sql,
                    "billing/invoices.py:2:    " + REPO_SQL.splitlines()[1].strip(),
                    0.02,
                ),
            ),
            (
                "migration-notes",
                "llm",
                "fail",
                rubric_verdict(
                    rubric,
                    "fail",
                    "There is no MIGRATION.md.",
                    [("every changed public function is listed", False, "")],
                    base,
                    size,
                ),
            ),
        ]

    # Session 1: the models pass. Sessions 2 and 3 make no feature pass; session 3 runs out of budget.
    s1 = story.session(run, day + timedelta(hours=2, minutes=5, seconds=1), "started", 21733)
    s1.turn("Reading the current data access code.", read_call("billing/invoices.py", REPO_SQL), out=900)
    s1.turn("Declaring the three mapped classes first.", write_call("billing/models.py", MODELS), out=3100)
    s1.turn(
        "Running the model tests.",
        bash_call("python -m pytest -q tests/test_models.py", pytest_ok(4, "0.31"), ms=1400),
        out=300,
    )
    s1.turn(
        "They pass.",
        commit_call("Declare Customer, Invoice and Payment as ORM models", {"billing/models.py": MODELS}),
        out=280,
    )
    s1.turn(
        "Now the invoice repository.",
        bash_call(
            "python -m pytest -q tests/test_invoices.py tests/test_payments.py",
            PYTEST_INVOICES_FAIL,
            is_error=True,
            ms=2100,
        ),
        out=2600,
    )
    s1.handoff(
        "",
        {
            "done": ["billing/models.py with the three mapped classes"],
            "next": ["port billing/invoices.py and billing/payments.py to select()"],
            "blockers": [],
            "notes": "Two repository tests fail: a textual where-clause and totals summed as floats.",
        },
        out=1200,
    )
    s1.turn("Handoff written.", out=140)
    cp = s1.end("finished", "the model ended its turn")
    statuses = story.judge(
        run,
        s1,
        cp,
        verdicts("pass", "fail", "fail", "the start of the run", 3310),
        {"migration-notes": (4210, 300)},
    )
    story.settle(run, s1, statuses, {})
    story.next_session(run, s1)
    before = dict(statuses)

    attempts = (
        ("The overdue query needs text() or, better, a real column expression.", "billing/invoices.py"),
        (
            "Totals must be Decimal end to end; the float comes from func.sum over a REAL column.",
            "billing/payments.py",
        ),
        ("Trying the repository tests again.", None),
        ("The same two failures. Looking at how the fixtures create the tables.", "tests/conftest.py"),
        (
            "The fixtures still create the tables with raw DDL, typed REAL. Switching them to Base.metadata.",
            "tests/conftest.py",
        ),
        ("Running the whole suite.", None),
    )
    limit = run.spec.budget.usd or 0.0
    for n, pid in ((2, 22980), (3, 24417)):
        live = story.session(
            run, story.now + timedelta(minutes=5), "cooldown of 300s after the last session", pid
        )
        warned = False
        stop = False
        for round_ in range(4):
            for text, path in attempts:
                if path is None:
                    call = bash_call(
                        "python -m pytest -q tests/test_invoices.py tests/test_payments.py",
                        PYTEST_INVOICES_FAIL,
                        is_error=True,
                        ms=2050,
                    )
                else:
                    call = read_call(path, f"[{path}: {120 + 17 * round_} lines]")
                live.turn(text, call, out=2900)
                story.flush()
                spent = runs.get_run(story.store, run.id).usage.usd
                if spent >= limit * run.spec.budget.warn_at and not warned:
                    warned = True
                    story.event(
                        run.id,
                        "budget_warning",
                        {
                            "cap": "usd",
                            "limit": limit,
                            "spent": round(spent, 6),
                            "warn_at": run.spec.budget.warn_at,
                        },
                        live.id,
                    )
                if n == 3 and spent > limit - 0.1:
                    stop = True
                    break
            if stop or (n == 2 and round_ == 1):
                break
        if n == 2:
            live.handoff(
                "",
                {
                    "done": ["the fixtures build the tables from Base.metadata"],
                    "next": ["find why payment totals are still halved"],
                    "blockers": [
                        "test_payment_totals_per_customer: the totals are half of what the test expects"
                    ],
                    "notes": "test_overdue_invoices_sorted still fails on a textual where-clause "
                    "somewhere in the fixtures.",
                },
                out=1300,
            )
            cp = live.end("finished", "the model ended its turn")
        else:
            spent = runs.get_run(story.store, run.id).usage.usd
            input_bound = 61_412
            story.event(
                run.id,
                "budget_stop",
                {
                    "cap": "usd",
                    "limit": limit,
                    "spent": round(spent, 6),
                    "input_bound": input_bound,
                    "max_tokens": 8192,
                },
                live.id,
            )
            detail = (
                "the next model call would not fit in what is left of budget.usd "
                f"({spent:.4f} of {limit:g} spent)"
            )
            cp = live.end("budget", detail, cap="usd")
        statuses = story.judge(
            run,
            live,
            cp,
            verdicts("pass", "fail", "fail", f"checkpoint {cp.id}", 5120),
            {"migration-notes": (5933, 290)},
        )
        story.settle(run, live, statuses, before)
        if n == 2:
            story.next_session(run, live)

    trip = no_progress_trip(run.spec.breakers, [True, False, False], half_open=False)
    assert trip is not None and trip.name == OPEN_BREAKER
    story.flush()
    with story.store.writing() as conn:
        runs.set_breaker(conn, run.id, trip.name, "open", trip.reason)
        log.append(
            conn, run.id, "breaker_tripped", {"breaker": trip.name, **trip.numbers}, session_id=live.id
        )
        reason = f"budget.usd is spent: waiting for a raise (`longrun budget set {run.id} --usd N`)"
        runs.set_run_state(conn, run.id, RunState.awaiting_approval, reason)
        approval = runs.add_approval(conn, run.id, "budget_raise", {"cap": "usd", "detail": detail}, live.id)
    assert approval == APPROVAL_BUDGET
    story.at(day + timedelta(hours=5, minutes=50, seconds=12))
    story.set_state(
        run, RunState.paused, f"paused by {WHO}", due_at=None, next_session_at=None, next_reason=None
    )
    story.event(run.id, "paused", {"by": WHO, "sessions_told_to_wrap_up": []})
    story.flush()
    run.repo.write_refs()
