"""The abuse monitor: signals, the response ladder, alerts.

Signals, each about a subject (a session, a license, an embed token or a
client network):

- ``rate_limited``: a rate limit or the daily quota refused a request;
- ``refusals_ignored``: one session (for handshakes: one embed token)
  kept calling after rate limits refused it, ``ignored_refusals`` 429s in
  one strike window (a person calls again a few times, not dozens);
  token minting is not counted, as the integrator's backend mints for
  all its users;
- ``throttle_ignored``: the same, while the license was throttled;
- ``enumeration``: a session (or a license, per product) walks a numeric or
  date query parameter in one direction, as when paging, walking station
  ids, tiles or time ranges in order;
- ``regular_timing``: the last requests of a session or license came at
  machine-regular intervals (low coefficient of variation);
- ``token_networks``: one embed token was used from several networks;
- ``session_networks``: one session sent requests from several networks;
- ``token_sessions``: one embed token opened more sessions than it has
  products (plus a margin);
- ``automation``: the handshake's environment report shows
  ``navigator.webdriver``, a headless browser, or a user agent that is not
  the one the request came with;
- ``replay``: a session repeated or went back on its request counter;
- ``hidden``: the container was hidden at the handshake, or data requests
  carry ``X-Xf-Hidden: 1`` (the component sends it while its page is not
  visible; the header is not authenticated and only catches the naive).

The ladder, each step an audit event: a signal is *observed*
(``abuse_signal``) and adds its weight to the license's suspicion score,
which leaks over time; crossing ``alert_at`` raises an *alert*
(``abuse_alert``, stored, listed by the admin API, POSTed to the webhook);
``throttle_at`` *throttles* the license (``license_throttled``: 429 with
Retry-After for a while); ``freeze_at`` *freezes* it (``license_frozen``:
403 ``license_frozen`` on every request until the freeze ends).
Revocation stays a licensor's decision.

Errors name no threshold, signal or score: 429 ``rate_limited`` (with
Retry-After) or 403 ``license_frozen``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from xinfeng.license.model import License
from xinfeng.license.tokens import EmbedToken
from xinfeng.sdk.envelope import HIDDEN_HEADER
from xinfeng.sdk.errors import (
    LicenseFrozen,
    ProtocolError,
    RateLimited,
    ReplayDetected,
    XinfengError,
)
from xinfeng.sdk.wire import parse_uint

from .alerts import AlertWebhook
from .config import AbuseConfig, Config
from .limits import Limiter, network_of
from .limits_store import Activity, Bucket, Hold, LimitsStore
from .signals import (
    Signal,
    automation_markers,
    bucket_subject,
    subject_digest,
    timing_cv,
    walk_steps,
)

if TYPE_CHECKING:
    from .storage import SessionRecord, Storage

logger = logging.getLogger(__name__)

MAX_ALERTS_PAGE = 500
MAX_REMEMBERED_STRIKES = 10_000
STEPS = ("observe", "alert", "throttle", "freeze")

def hold_error(hold: Hold, now_ms: int) -> XinfengError:
    """The error a request gets while its license is on hold."""
    if hold.kind == "freeze":
        return LicenseFrozen()
    return RateLimited(-(-(hold.until_ms - now_ms) // 1000))


# -- the ladder -----------------------------------------------------------------


class Ladder:
    """Turns signals into suspicion, and suspicion into alerts and holds."""

    def __init__(self, cfg: AbuseConfig, store: LimitsStore, storage: Storage,
                 webhook: AlertWebhook) -> None:
        self.cfg = cfg
        self.store = store
        self.storage = storage
        self.webhook = webhook
        self.leak_per_ms = cfg.forgive_per_minute / 60_000
        self.cooldown_ms = cfg.strike_cooldown_s * 1000
        self._struck: dict[tuple[str, str, str], int] = {}

    def step(self, score: float) -> int:
        """0 observe, 1 alert, 2 throttle, 3 freeze."""
        cfg = self.cfg
        return sum(score >= t for t in (cfg.alert_at, cfg.throttle_at, cfg.freeze_at))

    async def escalate(
        self, license_id: str, signals: Sequence[Signal], now_ms: int
    ) -> Hold | None:
        """Count each signal (once per cooldown) and climb the ladder.

        A signal seen about several subjects in one request (a session and
        its license) adds its weight once. Returns the hold this call put
        on the license, if it put one.
        """
        counted = [s for s in signals if await self._strike(license_id, s, now_ms)]
        if not counted:
            return None
        weight = sum(self.cfg.weight(name) for name in {s.name for s in counted})
        score, prior = await self.store.add_suspicion(license_id, weight, now_ms,
                                                      self.leak_per_ms)
        for s in counted:
            await self.storage.log_event(
                now_ms, "abuse_signal", s.name, license_id,
                {"subject": s.subject, "score": round(score, 2), **s.detail})
        return await self._respond(license_id, counted, score, prior, now_ms)

    async def _strike(self, license_id: str, signal: Signal, now_ms: int) -> bool:
        """Whether ``signal`` counts now; the store decides, across replicas.

        A strike this process saw is remembered for its cooldown, in which
        the store would only say no: strikes never move back in time.
        """
        key = (license_id, signal.name, signal.subject)
        if now_ms - self._struck.get(key, now_ms - self.cooldown_ms) < self.cooldown_ms:
            return False
        counted = await self.store.strike(license_id, signal.name, signal.subject,
                                          now_ms, self.cooldown_ms)
        if len(self._struck) >= MAX_REMEMBERED_STRIKES:
            self._struck.clear()
        if counted:
            self._struck[key] = now_ms
        return counted

    async def _respond(
        self, license_id: str, signals: Sequence[Signal], score: float,
        prior: float, now_ms: int,
    ) -> Hold | None:
        step = self.step(score)
        hold = None
        if step >= 2:
            kind = "freeze" if step == 3 else "throttle"
            seconds = self.cfg.freeze_s if step == 3 else self.cfg.throttle_s
            reason = ",".join(sorted({s.name for s in signals}))
            hold = await self.store.set_hold(license_id, kind, now_ms,
                                             now_ms + seconds * 1000, reason)
        if hold is not None:
            event = "license_frozen" if hold.kind == "freeze" else "license_throttled"
            await self.storage.log_event(
                now_ms, event, "ok", license_id,
                {"until_ms": hold.until_ms, "score": round(score, 2),
                 "signals": sorted({s.name for s in signals})})
            await self.alert(license_id, hold.kind, signals, score, now_ms)
        elif self.step(prior) == 0 and step >= 1:
            await self.alert(license_id, STEPS[1], signals, score, now_ms)
        return hold

    async def alert(
        self, license_id: str, level: str, signals: Sequence[Signal], score: float,
        now_ms: int,
    ) -> None:
        """Store an alert, log it, and post it to the webhook."""
        detail = {"signals": sorted({s.name for s in signals}),
                  "subjects": sorted({s.subject for s in signals}),
                  "score": round(score, 2)}
        seq = await self.store.add_alert(now_ms, license_id, level,
                                         signals[0].name, detail)
        await self.storage.log_event(now_ms, "abuse_alert", level, license_id,
                                     {"seq": seq, **detail})
        self.webhook.send({"type": "xinfeng.abuse_alert", "seq": seq,
                           "time_ms": now_ms, "license_id": license_id,
                           "level": level, "signal": signals[0].name,
                           "detail": detail})


# -- the guard the routes call ----------------------------------------------------


class Guard:
    """Rate limits and abuse monitoring for the protocol routes.

    Each ``admit_*`` method runs after the request was authenticated and
    its license checked, and before anything is served; it raises
    ``RateLimited``, ``LicenseFrozen`` or ``StorageUnavailable`` (the server
    fails closed). Requests it refuses take nothing from any quota.
    """

    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.cfg = config.abuse
        self.storage = storage
        self.store = LimitsStore(storage)
        self.limiter = Limiter(self.cfg, self.store)
        self.webhook = AlertWebhook(self.cfg)
        self.ladder = Ladder(self.cfg, self.store, storage, self.webhook)
        self._next_sweep_ms = 0

    def now_ms(self) -> int:
        return self.config.clock_ms()

    async def admit_token(self, lic: License, ip: str) -> None:
        """Minting an embed token for ``lic`` from ``ip``."""
        now = await self._start()
        net = network_of(ip)
        # Tokens are minted by the integrator's backend for all its users:
        # its 429s say nothing about one client, so they are not counted.
        await self._check_hold(lic.license_id, now, None)
        buckets = self.limiter.mint_buckets(lic.license_id, net)
        await self._admit(lic.license_id, buckets, now, None)

    async def admit_session(
        self, lic: License, token: EmbedToken, env: Mapping[str, Any], ip: str,
        request: Request, session_id: bytes,
    ) -> None:
        """A handshake with ``token`` from ``ip`` reporting ``env``, for the
        session ``session_id`` it will open; the session holds a slot."""
        now = await self._start()
        net = network_of(ip)
        token_subject = "t:" + subject_digest(token.jti)
        await self._check_hold(lic.license_id, now, token_subject)
        signals = self._env_signals(env, request.headers.get("user-agent", ""), net)
        signals += await self._token_signals(token, net)
        self._raise_on_hold(
            await self.ladder.escalate(lic.license_id, signals, now), now)
        ttl_ms = self.config.session_ttl_s * 1000
        slot = await self.limiter.open_slot(lic, token.jti, net, now, ttl_ms,
                                            slot_id=subject_digest(session_id))
        try:
            buckets = self.limiter.handshake_buckets(subject_digest(token.jti), net)
            await self._admit(lic.license_id, buckets, now, token_subject)
        except XinfengError:
            await self.store.release_slot(slot)
            raise

    async def admit_data(
        self, request: Request, lic: License, session: SessionRecord, ip: str
    ) -> None:
        """A data request of ``session`` from ``ip``."""
        now = await self._start()
        net = network_of(ip)
        signals = await self._data_signals(request, lic.license_id,
                                           session.session_id, net, now)
        self._raise_on_hold(
            await self.ladder.escalate(lic.license_id, signals, now), now)
        digest = subject_digest(session.session_id)
        buckets = self.limiter.data_buckets(lic, digest, net, now)
        await self._admit(lic.license_id, buckets, now, "s:" + digest)

    async def admit_renewal(
        self, lic: License, session: SessionRecord, ip: str, expires_ms: int
    ) -> None:
        """Renewing ``session`` from ``ip`` until ``expires_ms``: not while the
        license is on hold, within the session's and network's rates; its
        slot is kept (or taken again, within ``max_sessions``)."""
        now = await self._start()
        digest = subject_digest(session.session_id)
        net = network_of(ip)
        await self._check_hold(lic.license_id, now, "s:" + digest)
        buckets = self.limiter.renewal_buckets(digest, net)
        await self._admit(lic.license_id, buckets, now, "s:" + digest)
        if not await self.store.extend_slot(digest, expires_ms, now):
            await self.limiter.open_slot(lic, "", net, now, expires_ms - now,
                                         slot_id=digest)

    async def session_license(self, request: Request) -> str | None:
        """The license of the session a request names (it may have ended)."""
        try:
            session_id = bytes.fromhex(request.headers.get("x-xf-session", ""))
        except ValueError:
            return None
        return await self.store.session_license(session_id)

    async def note_refusal(
        self, request: Request, exc: XinfengError, license_id: str | None
    ) -> None:
        """See a refused request; replayed counters count against the license."""
        if not isinstance(exc, ReplayDetected):
            return
        license_id = license_id or await self.session_license(request)
        if license_id is None:
            return
        # A replay passed the header checks: the session id is valid hex.
        session_id = bytes.fromhex(request.headers["x-xf-session"])
        now = self.now_ms()
        subject = "s:" + subject_digest(session_id)
        count = await self.store.bump("replay", subject,
                                      now + self.cfg.activity_ttl_s * 1000)
        if count >= self.cfg.replays:
            await self.ladder.escalate(
                license_id, [Signal("replay", subject, {"count": count})], now)

    async def alerts(self, since: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts with a sequence number above ``since``, oldest first."""
        return await self.store.alerts(since, min(max(limit, 1), MAX_ALERTS_PAGE))

    async def frozen_until(self, license_id: str) -> int | None:
        """When the license's freeze ends (ms), or None when it is not frozen."""
        hold = await self.store.active_hold(license_id, self.now_ms())
        return hold.until_ms if hold and hold.kind == "freeze" else None

    async def drain(self) -> None:
        """Wait for alert deliveries in flight (tests, shutdown)."""
        await self.webhook.drain()

    async def close(self) -> None:
        await self.webhook.close()

    # -- steps ------------------------------------------------------------------

    async def _start(self) -> int:
        now = self.now_ms()
        if now >= self._next_sweep_ms:
            self._next_sweep_ms = now + self.cfg.sweep_interval_s * 1000
            await self.store.sweep(now, self.cfg.strike_cooldown_s * 1000,
                                   self.ladder.leak_per_ms)
        return now

    async def _check_hold(
        self, license_id: str, now_ms: int, subject: str | None
    ) -> None:
        hold = await self.store.active_hold(license_id, now_ms)
        await self._enforce(license_id, hold, now_ms, subject)

    async def _enforce(
        self, license_id: str, hold: Hold | None, now_ms: int, subject: str | None
    ) -> None:
        """Refuse the request when the license is on hold; count it against
        ``subject`` (when there is one) when the hold is a throttle."""
        if hold is None:
            return
        if hold.kind == "throttle" and subject is not None:
            hold = await self._refused(license_id, "throttle_ignored", subject,
                                       now_ms) or hold
        raise hold_error(hold, now_ms)

    async def _refused(
        self, license_id: str, signal: str, subject: str, now_ms: int
    ) -> Hold | None:
        """Count a 429 sent to ``subject``; from the window's
        ``ignored_refusals``-th on, ``signal`` (it kept calling through them).

        Windows are fixed slices of ``strike_cooldown_s``; the strike
        cooldown lets the signal count once a cooldown per subject however
        fast the requests come. Returns the hold it put on the license.
        """
        count = await self.store.bump_in_window(
            "refused", f"{license_id}|{signal}|{subject}", now_ms,
            self.ladder.cooldown_ms)
        if count < self.cfg.ignored_refusals:
            return None
        return await self.ladder.escalate(
            license_id, [Signal(signal, subject, {"refused": count})], now_ms)

    def _raise_on_hold(self, hold: Hold | None, now_ms: int) -> None:
        if hold is not None:
            raise hold_error(hold, now_ms)

    async def _admit(
        self, license_id: str, buckets: Sequence[Bucket], now_ms: int,
        subject: str | None,
    ) -> None:
        """Take one request from every bucket, or refuse it with 429 (counted
        against ``subject`` when there is one)."""
        if await self.store.admit(buckets, license_id, now_ms):
            return
        denied, retry_s = await self.limiter.denial(buckets, now_ms)
        signals = [Signal("rate_limited", bucket_subject(b)) for b in denied]
        hold = await self.ladder.escalate(license_id, signals, now_ms)
        if subject is not None:
            hold = hold or await self._refused(license_id, "refusals_ignored",
                                               subject, now_ms)
        hold = hold or await self.store.active_hold(license_id, now_ms)
        if hold is not None:
            raise hold_error(hold, now_ms)
        raise RateLimited(retry_s)

    def _env_signals(
        self, env: Mapping[str, Any], http_ua: str, net: str
    ) -> list[Signal]:
        signals = []
        markers = automation_markers(env, http_ua)
        if markers:
            signals.append(Signal("automation", "n:" + net, {"markers": markers}))
        if env.get("hidden") is True:
            signals.append(Signal("hidden", "n:" + net, {"at": "handshake"}))
        return signals

    async def _token_signals(self, token: EmbedToken, net: str) -> list[Signal]:
        sessions, nets = await self.store.token_use(token.jti, net)
        subject = "t:" + subject_digest(token.jti)
        signals = []
        if nets >= self.cfg.token_networks:
            signals.append(Signal("token_networks", subject, {"networks": nets}))
        if sessions + 1 > len(token.products) + self.cfg.token_extra_sessions:
            signals.append(Signal("token_sessions", subject,
                                  {"sessions": sessions + 1}))
        return signals

    async def _data_signals(
        self, request: Request, license_id: str, session_id: bytes, net: str,
        now_ms: int,
    ) -> list[Signal]:
        """Record the request, refuse it if the license is on hold, and
        return what it and the requests before it show."""
        cfg = self.cfg
        session, lic = "s:" + subject_digest(session_id), "l:" + license_id
        hidden = request.headers.get(HIDDEN_HEADER) == "1"
        expires = now_ms + cfg.activity_ttl_s * 1000
        product = request.path_params.get("product", "")[:64]
        (activity, hold), walks = await asyncio.gather(
            self.store.record_activity(license_id, [session, lic], now_ms, net,
                                       hidden, cfg.window, expires),
            self._walks(request, (session, lic), product, now_ms, expires))
        await self._enforce(license_id, hold, now_ms, session)
        return self._activity_signals(activity, session) + walks

    def _activity_signals(
        self, activity: Sequence[Activity], session: str
    ) -> list[Signal]:
        cfg = self.cfg
        signals = []
        for act in activity:
            cv = timing_cv(act.stamps, cfg.window, cfg.pattern_max_gap_s * 1000)
            if cv is not None and cv <= cfg.regular_max_cv:
                signals.append(Signal("regular_timing", act.subject,
                                      {"cv": round(cv, 3)}))
            if act.subject == session and len(act.nets) > 1:
                signals.append(Signal("session_networks", session,
                                      {"networks": len(act.nets)}))
            if act.subject == session and act.hidden >= cfg.hidden_requests:
                signals.append(Signal("hidden", session, {"requests": act.hidden}))
        return signals

    async def _walks(
        self, request: Request, scopes: Sequence[str], product: str, now_ms: int,
        expires_ms: int,
    ) -> list[Signal]:
        steps = walk_steps(request.query_params.multi_items())
        rows = [(f"{scope}/{product}", param, position)
                for scope in scopes for param, position in steps]
        scores = await self.store.record_walks(
            rows, now_ms, self.cfg.pattern_max_gap_s * 1000, expires_ms)
        return [Signal("enumeration", key, {"steps": int(score)})
                for key, score in scores.items()
                if score >= self.cfg.enumeration_steps]


# -- admin route --------------------------------------------------------------------


def query_int(request: Request, name: str, default: int) -> int:
    """A non-negative integer query parameter; ProtocolError when malformed."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return parse_uint(text)
    except ValueError:
        raise ProtocolError(f"{name} must be a non-negative integer") from None


__all__ = ["HIDDEN_HEADER", "Guard", "Signal", "query_int"]
