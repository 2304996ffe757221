"""app/routes/_deps.resolve_dependencies_in_order: dependencies one after another, plain ones first;
the request and the app's state handed over as they are; everything else validated as Litestar does."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Litestar, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.testing import AsyncTestClient

from app.routes._deps import resolve_dependencies_in_order


def _app(events: list[Any]) -> Litestar:
    resolve_dependencies_in_order()

    async def opened(request: Request, state: State) -> AsyncIterator[str]:
        events.append(("opened", request, state))
        try:
            yield "resource"
        finally:
            events.append("closed")

    def who(request: Request) -> str:
        events.append(("who", request))
        if request.query_params.get("refuse"):
            raise PermissionError("refused")
        return "patron"

    def limit(state: State) -> int:
        events.append(("limit", state))
        return int(state.limit)

    def page(
        number: Annotated[int, QueryParameter()] = 1,
    ) -> int:  # a client's value: still parsed and checked by Litestar
        return number

    @get("/", sync_to_thread=False)
    def handler(
        request: Request,
        resource: NamedDependency[str],
        patron: NamedDependency[str],
        most: NamedDependency[int],
        at: NamedDependency[int],
    ) -> dict[str, Any]:
        events.append(("handler", request))
        return {"resource": resource, "patron": patron, "most": most, "at": at}

    return Litestar(
        [handler],
        dependencies={
            "resource": Provide(opened),
            "patron": Provide(who, sync_to_thread=False),
            "most": Provide(limit, sync_to_thread=False),
            "at": Provide(page, sync_to_thread=False),
        },
        state=State({"limit": 7}),
        exception_handlers={PermissionError: lambda request, exc: _refused()},
    )


def _refused() -> Any:
    from litestar import Response

    return Response("refused", status_code=403)


async def test_the_request_and_state_are_the_frameworks_own_and_generators_come_last() -> None:
    events: list[Any] = []
    app = _app(events)
    async with AsyncTestClient(app) as client:
        answer = await client.get("/?number=3")
        assert answer.status_code == 200
        assert answer.json() == {"resource": "resource", "patron": "patron", "most": 7, "at": 3}
    names = [event[0] if isinstance(event, tuple) else event for event in events]
    # Plain dependencies (in either order) before the generator; the generator closed after the handler.
    assert sorted(names[:2]) == ["limit", "who"] and names[2:] == ["opened", "handler", "closed"]
    seen = {event[0]: event[1:] for event in events if isinstance(event, tuple)}
    handler_request = seen["handler"][0]
    assert seen["who"][0] is handler_request and seen["opened"][0] is handler_request
    assert seen["limit"][0] is app.state and seen["opened"][1] is app.state  # not a copy made per request


async def test_a_clients_value_is_still_validated() -> None:
    events: list[Any] = []
    async with AsyncTestClient(_app(events)) as client:
        answer = await client.get("/?number=three")
        assert answer.status_code == 400
        assert "handler" not in [e[0] for e in events if isinstance(e, tuple)]


async def test_a_refusal_comes_before_anything_is_opened() -> None:
    events: list[Any] = []
    async with AsyncTestClient(_app(events)) as client:
        answer = await client.get("/?refuse=1")
        assert answer.status_code == 403
    names = [e[0] if isinstance(e, tuple) else e for e in events]
    assert "who" in names and "opened" not in names and "handler" not in names


async def test_each_request_resolves_its_own_values() -> None:
    events: list[Any] = []
    async with AsyncTestClient(_app(events)) as client:
        for number in (1, 2, 3):
            assert (await client.get(f"/?number={number}")).json()["at"] == number
    requests = [e[1] for e in events if isinstance(e, tuple) and e[0] == "who"]
    assert len(requests) == 3 and len({id(r) for r in requests}) == 3
    assert events.count("closed") == 3


def _pass_through_app(made: list[Any]) -> Litestar:
    resolve_dependencies_in_order()

    def counts() -> dict[str, int]:
        value = {"loans": 10}
        made.append(value)
        return value

    @get("/counts", sync_to_thread=False)
    def whole(request: Request, tally: NamedDependency[dict[str, int]]) -> dict[str, Any]:
        return {"same": tally is made[-1], "tally": tally}

    @get("/own", sync_to_thread=False)
    def own(tally: NamedDependency[dict[str, int]], number: Annotated[int, QueryParameter(ge=1)]) -> int:
        return number + tally["loans"]

    @get("/state", sync_to_thread=False)
    def shared(request: Request, state: State, tally: NamedDependency[dict[str, int]]) -> dict[str, Any]:
        state.seen = state.get("seen", 0) + 1  # the app's own state, as Litestar hands it over
        return {"is_app_state": state is request.app.state, "seen": state.seen}

    return Litestar(
        [whole, own, shared],
        dependencies={"tally": Provide(counts, sync_to_thread=False)},
        state=State({"limit": 7}),
    )


async def test_a_handler_of_resolved_values_gets_them_as_they_were_made() -> None:
    """Only the request and dependencies: no signature model between them and the handler (it
    rebuilt a dict-typed value into a new dict at every request)."""
    made: list[Any] = []
    async with AsyncTestClient(_pass_through_app(made)) as client:
        answer = await client.get("/counts")
        assert answer.status_code == 200
        assert answer.json() == {"same": True, "tally": {"loans": 10}}


async def test_a_handler_taking_the_state_gets_the_apps_state() -> None:
    made: list[Any] = []
    app = _pass_through_app(made)
    async with AsyncTestClient(app) as client:
        assert (await client.get("/state")).json() == {"is_app_state": True, "seen": 1}
        assert (await client.get("/state")).json() == {"is_app_state": True, "seen": 2}
    assert app.state.seen == 2


async def test_a_handler_with_a_clients_value_still_validates_it() -> None:
    made: list[Any] = []
    async with AsyncTestClient(_pass_through_app(made)) as client:
        assert (await client.get("/own?number=2")).json() == 12
        for bad in ("three", "0", "２"):
            assert (await client.get(f"/own?number={bad}")).status_code == 400
