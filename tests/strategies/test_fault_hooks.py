"""The test-only gate that the kill and race tests synchronise on (``strategies/fault_hooks.py``)."""

import threading

from optinas.strategies.fault_hooks import ABORT_ENV, GATE_ENV, before_training, forwarded_environment


def test_without_the_variables_the_hooks_do_nothing(monkeypatch):
    monkeypatch.delenv(GATE_ENV, raising=False)
    monkeypatch.delenv(ABORT_ENV, raising=False)
    before_training(0, "any")  # returns at once: no gate, no abort
    assert forwarded_environment() == {}


def test_the_gate_lets_exactly_the_opened_tickets_through_in_ticket_order(monkeypatch, gate):
    monkeypatch.setenv(GATE_ENV, str(gate.folder))
    assert forwarded_environment() == {GATE_ENV: str(gate.folder)}
    passed, lock = [], threading.Lock()

    def trial(number):
        before_training(number, f"hash-{number}")
        with lock:
            passed.append(number)

    threads = [threading.Thread(target=trial, args=(number,), daemon=True) for number in range(3)]
    for thread in threads:
        thread.start()
    arrived = gate.wait(lambda: gate.arrivals() if len(gate.arrivals()) == 3 else None, "three trials at the gate")
    assert [ticket for ticket, _, _ in arrived] == [0, 1, 2] and not passed  # closed: nobody trained
    assert sorted(number for _, number, _ in arrived) == [0, 1, 2]
    gate.open(2)
    gate.wait(lambda: len(passed) == 2, "two trials through the gate")
    assert sorted(passed) == sorted(number for ticket, number, _ in arrived if ticket < 2)
    gate.open(3)
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(passed) == [0, 1, 2]
