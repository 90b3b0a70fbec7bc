"""The page's routes: reads go through `storage.review_queries` and `intake.reports`, actions
through `intake.review` (the same functions as `intake review`). Database work runs in the
thread pool; handlers only parse, check and redirect."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from intake import review, web_model
from intake.review import ReviewError
from intake.web import (
    Web,
    bytes_of,
    client_of,
    parse_local,
    report_now,
    safe_next,
    xlsx_response,
)
from storage import queries
from storage import review_queries as rq
from storage.session import session_scope

TEMPLATE_NAME = "แบบฟอร์มข้อมูลการยกระดับเมือง.xlsx"


def routes(web: Web) -> list[Route]:
    svc = web.svc

    def _board() -> web_model.Dashboard:
        report = report_now(svc)
        with session_scope(svc.factory) as session:
            unverified = len(queries.unverified_expected_senders(session))
        return web_model.dashboard(report, unverified)

    async def index(request: Request) -> Response:
        board = await run_in_threadpool(_board)
        qr = web_model.qr_svg(web.template_url())
        return web.render(
            request, "index.html", board=board, qr=qr, template_url=web.template_url(),
            grid=(web_model.GRID_COLUMNS, web_model.GRID_ROWS),
        )  # fmt: skip

    def _history(sender_id: str) -> tuple[Any, list[Any]]:
        with session_scope(svc.factory) as session:
            return rq.sender_history(session, sender_id), rq.senders_in_order(session)

    async def sender(request: Request) -> Response:
        history, _ = await run_in_threadpool(_history, request.path_params["sender_id"])
        if history is None:
            return PlainTextResponse("ไม่พบผู้ส่งนี้", 404)
        report = await run_in_threadpool(report_now, svc)
        entity = next((e for e in report.entities if e.id == history.sender.id), None)
        return web.render(
            request, "sender.html", h=history, entity=entity,
            deadline_value=web_model.bangkok_input_value(
                history.sender.deadline_override or svc.settings.deadline
            ),
        )  # fmt: skip

    def _queue() -> tuple[list[Any], list[Any]]:
        with session_scope(svc.factory) as session:
            return review.pending(session), rq.senders_in_order(session)

    async def queue(request: Request) -> Response:
        entries, senders = await run_in_threadpool(_queue)
        return web.render(request, "review.html", entries=entries, senders=senders)

    async def act(request: Request) -> Response:
        form = await request.form()
        back = safe_next(str(form.get("next") or ""), "/review")
        if not web.csrf_ok(request, form):
            return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
        actor = request.state.actor
        try:
            done = await run_in_threadpool(_run_action, web, dict(form), actor)
            request.session["flash"] = {"kind": "ok", "text": done.message_th}
        except (ReviewError, ValueError, KeyError) as exc:
            text = str(exc) if isinstance(exc, ReviewError) else f"ข้อมูลไม่ครบหรือไม่ถูกต้อง ({exc})"
            request.session["flash"] = {"kind": "error", "text": text}
        return RedirectResponse(back, 303)

    async def login_form(request: Request) -> Response:
        return web.render(request, "login.html", next=safe_next(request.query_params.get("next")))

    async def login(request: Request) -> Response:
        form = await request.form()
        target = safe_next(str(form.get("next") or ""))
        if not web.csrf_ok(request, form):
            return PlainTextResponse("CSRF token missing or wrong: reload the page", 403)
        client = client_of(request)
        wait = web.throttle.wait(client)
        if wait:  # throttled: the token is not even looked at
            return web.render(
                request, "login.html", 429, {"Retry-After": str(wait)}, next=target, wait=wait
            )
        if not web.token_ok(str(form.get("token", ""))):
            web.throttle.failed(client)
            return web.render(request, "login.html", 401, next=target, error=True)
        web.throttle.succeeded(client)
        web.sessions.end(request.session.get("sid"))
        request.session.clear()  # a new session after login (no fixation)
        request.session["sid"] = web.sessions.start(str(form.get("name", "")).strip()[:60] or "web")
        return RedirectResponse(target, 303)

    async def logout(request: Request) -> Response:
        form = await request.form()
        if web.csrf_ok(request, form):
            web.sessions.end(request.session.get("sid"))  # the old cookie is worth nothing now
            request.session.clear()
        return RedirectResponse("/login" if web.token else "/", 303)

    async def template(request: Request) -> Response:
        from intake.forms import write_template

        data = await run_in_threadpool(bytes_of, lambda buf: write_template(svc.spec, buf))
        return xlsx_response(data, TEMPLATE_NAME)

    async def report_xlsx(request: Request) -> Response:
        from intake.report_xlsx import write_report_xlsx

        report = await run_in_threadpool(report_now, svc)
        data = await run_in_threadpool(bytes_of, lambda buf: write_report_xlsx(report, buf))
        return xlsx_response(data, "สถานะการส่งข้อมูล.xlsx")

    async def export_xlsx(request: Request) -> Response:
        assert web.export is not None

        def build() -> bytes:
            with session_scope(svc.factory) as session:
                return bytes_of(
                    lambda buf: web.export(  # type: ignore[misc]
                        session,
                        svc.spec,
                        buf,
                        deadline=svc.settings.deadline,
                        now=svc.clock.now(),
                    )  # fmt: skip
                )

        return xlsx_response(await run_in_threadpool(build), "ข้อมูลรวมทุกจังหวัด.xlsx")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    table = [
        Route("/", index),
        Route("/sender/{sender_id}", sender),
        Route("/review", queue),
        Route("/act", act, methods=["POST"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/template.xlsx", template),
        Route("/report.xlsx", report_xlsx),
        Route("/healthz", health),
    ]
    if web.export is not None:
        table.append(Route("/export.xlsx", export_xlsx))
    return table


def _run_action(web: Web, form: dict[str, Any], actor: str) -> review.Done:
    """One form post -> one `intake.review` action in one transaction."""
    svc, action = web.svc, str(form.get("action", ""))
    note = str(form.get("note", "")).strip()
    settings = svc.settings
    calls = {
        "assign": lambda s: review.assign_message(
            s, int(form["message_id"]), str(form["sender_id"]), actor, note
        ),
        "add_address": lambda s: review.add_address(
            s, str(form["sender_id"]), str(form["address"]), actor, note
        ),
        "accept": lambda s: review.decide_submission(
            s, int(form["submission_id"]), True, actor, note, campaign=settings.campaign
        ),
        "reject": lambda s: review.decide_submission(
            s, int(form["submission_id"]), False, actor, note, campaign=settings.campaign
        ),
        "confirm": lambda s: review.confirm_submission(
            s, int(form["submission_id"]), actor, note, campaign=settings.campaign
        ),
        "received": lambda s: review.mark_received(
            s,
            str(form["sender_id"]),
            str(form.get("channel", "paper")),
            actor,
            note,
            deadline=settings.deadline,
            campaign=settings.campaign,
            received_at=parse_local(str(form["received_at"])) if form.get("received_at") else None,
        ),  # fmt: skip
        "resend": lambda s: review.resend_reply(s, int(form["outbox_id"]), actor, note),
        "cancel": lambda s: review.cancel_reply(s, int(form["outbox_id"]), actor, note),
        "extend": lambda s: review.extend_deadline(
            s, str(form["sender_id"]), parse_local(str(form["deadline"])), actor, note
        ),
        "resolve": lambda s: review.resolve_item(s, int(form["item_id"]), actor, note),
    }
    if action not in calls:
        raise ReviewError(f"ไม่รู้จักคำสั่ง ‘{action}’")
    with session_scope(svc.factory) as session:
        done = calls[action](session)
    if action == "assign":
        review.run_assigned(svc, int(form["message_id"]))
    return done
