"""Named queries whose behaviour differs between SQLite and PostgreSQL drivers."""

from __future__ import annotations

from storage import queries
from storage.models import Sender, SenderKind
from storage.session import make_engine, session_factory, session_scope


def test_add_sender_address_reports_new_only_once(database_url):
    factory = session_factory(make_engine(database_url))
    with session_scope(factory) as session:
        session.add(Sender(id="TH-50", kind=SenderKind.PROVINCE, name_th="เชียงใหม่",
                           name_en="Chiang Mai", aliases=[]))
    with session_scope(factory) as session:
        assert queries.add_sender_address(session, "TH-50", "Saraban@ChiangMai.go.th", "learned")
        assert not queries.add_sender_address(session, "TH-50", "saraban@chiangmai.go.th", "config")
        assert queries.addresses_by_sender(session) == {"TH-50": {"saraban@chiangmai.go.th"}}


def test_counter_runs_per_name(database_url):
    factory = session_factory(make_engine(database_url))
    with session_scope(factory) as session:
        assert [queries.next_counter(session, "receipt:x:2567") for _ in range(3)] == [1, 2, 3]
        assert queries.next_counter(session, "receipt:x:2568") == 1


def test_cursor_moves_forward_only_and_resets_with_uidvalidity(database_url):
    factory = session_factory(make_engine(database_url))
    with session_scope(factory) as session:
        queries.set_cursor(session, "box", 7, 10)
        queries.set_cursor(session, "box", 7, 5)
        assert queries.get_cursor(session, "box").last_uid == 10
        queries.set_cursor(session, "box", 8, 3)
        cursor = queries.get_cursor(session, "box")
        assert (cursor.uidvalidity, cursor.last_uid) == (8, 3)
