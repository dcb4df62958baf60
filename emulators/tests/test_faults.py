"""Fault injection and the shared admin routes, on a bare app with one route."""

import ssl

import pytest
import requests
import trustme
from aiohttp import web

from emulators.faults import FaultProfile
from emulators.server import BackgroundServer, create_base_app


async def _hello(_: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


async def _echo_size(request: web.Request) -> web.Response:
    return web.json_response({"received": len(await request.read())})


@pytest.fixture
def server():
    app = create_base_app()
    app.router.add_get("/v1/hello", _hello)
    app.router.add_get("/v2/other", _hello)
    app.router.add_post("/v1/upload", _echo_size)
    with BackgroundServer(app) as srv:
        yield srv


def test_no_faults_by_default(server):
    for _ in range(20):
        assert requests.get(f"{server.base_url}/v1/hello", timeout=5).status_code == 200


def test_max_faults_fails_exactly_the_next_n_requests(server):
    server.set_faults({"rules": [{"path": "/v1/*", "status_rates": {503: 1.0}, "max_faults": 2, "retry_after": 3}]})
    responses = [requests.get(f"{server.base_url}/v1/hello", timeout=5) for _ in range(4)]
    assert [r.status_code for r in responses] == [503, 503, 200, 200]
    assert responses[0].headers["Retry-After"] == "3"
    # Other paths are not matched by the rule.
    assert requests.get(f"{server.base_url}/v2/other", timeout=5).status_code == 200


def test_rates_are_seeded_and_reproducible(server):
    def run() -> list[int]:
        server.set_faults({"seed": 7, "rules": [{"status_rates": {429: 0.3, 500: 0.2}}]})
        return [requests.get(f"{server.base_url}/v1/hello", timeout=5).status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second
    assert {429, 500, 200} == set(first)


def test_redirect_names_its_location(server):
    location = "http://127.0.0.1:9/elsewhere"
    server.set_faults({"rules": [{"path": "/v1/*", "status_rates": {307: 1.0}, "redirect_to": location}]})
    response = requests.get(f"{server.base_url}/v1/hello", timeout=5, allow_redirects=False)
    assert (response.status_code, response.headers["Location"]) == (307, location)
    with pytest.raises(ValueError, match="a 3xx status needs redirect_to"):
        FaultProfile.from_dict({"rules": [{"status_rates": {302: 1.0}}]})


def test_served_over_tls_with_a_given_certificate(tmp_path):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    app = create_base_app()
    app.router.add_get("/v1/hello", _hello)
    with BackgroundServer(app, ssl_context=context) as tls:
        assert tls.base_url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{tls.base_url}/v1/hello", timeout=5)
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        assert requests.get(f"{tls.base_url}/v1/hello", timeout=5, verify=str(bundle)).json() == {"hello": "world"}


def test_dropped_connection(server):
    server.set_faults({"rules": [{"path": "/v1/hello", "drop_rate": 1.0, "max_faults": 1}]})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/v1/hello", timeout=5)
    assert requests.get(f"{server.base_url}/v1/hello", timeout=5).status_code == 200


def test_an_answer_cut_short_after_the_request_was_handled():
    handled = []

    async def count(_: web.Request) -> web.Response:
        handled.append(1)
        return web.json_response({"handled": len(handled), "padding": "x" * 1000})

    app = create_base_app()
    app.router.add_get("/v1/count", count)
    with BackgroundServer(app) as server:
        server.set_faults({"rules": [{"path": "/v1/count", "cut_body_rate": 1.0, "max_faults": 1}]})
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(f"{server.base_url}/v1/count", timeout=5)
        assert requests.get(f"{server.base_url}/v1/count", timeout=5).json()["handled"] == 2
        log = requests.get(f"{server.base_url}/_emulator/requests", timeout=5).json()
    assert [(e["status"], e["fault"]) for e in log["requests"]] == [("cut", True), (200, False)]
    with pytest.raises(ValueError, match="drop_rate and cut_body_rate"):
        FaultProfile.from_dict({"rules": [{"drop_rate": 0.6, "cut_body_rate": 0.6}]})


def test_latency_is_added(server):
    server.set_faults({"rules": [{"latency_ms": 300}]})
    response = requests.get(f"{server.base_url}/v1/hello", timeout=5)
    assert response.elapsed.total_seconds() >= 0.3


def test_latency_range_is_drawn_per_request_and_seeded():
    profile = {"seed": 3, "rules": [{"latency_ms": 50, "latency_max_ms": 100}]}
    drawn = [FaultProfile.from_dict(profile).decide("GET", "/v1/hello").latency_ms for _ in range(2)]
    assert drawn[0] == drawn[1], "the same seed draws the same latencies"
    one = FaultProfile.from_dict(profile)
    latencies = [one.decide("GET", "/v1/hello").latency_ms for _ in range(200)]
    assert all(50 <= ms <= 100 for ms in latencies)
    assert min(latencies) < 55
    assert max(latencies) > 95
    with pytest.raises(ValueError, match="latency_max_ms must be at least latency_ms"):
        FaultProfile.from_dict({"rules": [{"latency_ms": 50, "latency_max_ms": 10}]})


def test_admin_routes_set_faults_and_log_requests(server):
    base = server.base_url
    bad = requests.put(f"{base}/_emulator/faults", json={"rules": [{"status_rates": {500: 2}}]}, timeout=5)
    assert bad.status_code == 400
    ok = requests.put(f"{base}/_emulator/faults", json={"rules": [{"status_rates": {500: 1.0}}]}, timeout=5)
    assert ok.status_code == 200
    assert requests.get(f"{base}/v1/hello", timeout=5).status_code == 500
    assert requests.delete(f"{base}/_emulator/faults", timeout=5).status_code == 200
    assert requests.get(f"{base}/v1/hello", timeout=5).status_code == 200
    log = requests.get(f"{base}/_emulator/requests", timeout=5).json()
    assert [(e["status"], e["fault"]) for e in log["requests"]] == [(500, True), (200, False)]
    assert log["by_route"] == {"GET /v1/hello": 2}


def test_request_log_measures_body_bytes_per_route(server):
    url = f"{server.base_url}/v1/upload"
    sized = requests.post(url, data=b"x" * 1000, timeout=5)
    # A generator body is sent chunked (no Content-Length): the log reads the body and the handler still gets it.
    chunked = requests.post(url, data=(b"y" * 250 for _ in range(3)), timeout=5)
    assert (sized.json(), chunked.json()) == ({"received": 1000}, {"received": 750})
    requests.get(f"{server.base_url}/v1/hello", timeout=5)
    log = requests.get(f"{server.base_url}/_emulator/requests", timeout=5).json()
    assert [e["bytes"] for e in log["requests"]] == [1000, 750, 0]
    assert log["bytes_by_route"] == {"POST /v1/upload": 1750, "GET /v1/hello": 0}


def test_profile_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown fault rule keys"):
        FaultProfile.from_dict({"rules": [{"stauts_rates": {}}]})
