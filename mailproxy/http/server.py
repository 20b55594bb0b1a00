"""The HTTP half of `mailproxy run`: mitmproxy's Master with our addons, on the caller's loop.

`mitmproxy.master.Master` is embedded rather than `DumpMaster`: DumpMaster's ErrorCheck addon calls
sys.exit(1) when any logger in the process (the IMAP half included) logs an ERROR during startup.
Master needs a running loop at construction, so everything happens in `HttpProxy.start`.

mitmproxy keeps its current master in a module global (`mitmproxy.ctx`): one HttpProxy per process.

`python -m mailproxy.http.server -c CONFIG` runs the HTTP half alone (the end-to-end tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

from mitmproxy import addons as mitm_addons
from mitmproxy import exceptions, options
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.master import Master

from mailproxy.config import Config, load_config
from mailproxy.detect.trackers import TrackerDB
from mailproxy.errors import MailproxyError
from mailproxy.http.addon import TLS_MODES, EventHook, ProxyState, TlsMode, all_addons

__all__ = ["DEFAULT_CONFDIR", "HttpProxy", "ca_info", "main"]

logger = logging.getLogger(__name__)

DEFAULT_CONFDIR: Final = "~/.mitmproxy"
_STOP_TIMEOUT: Final = 10.0


class _Ready:
    """Signals that mitmproxy finished starting (its servers are bound, or failed to bind)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def running(self) -> None:
        self.event.set()


class HttpProxy:
    """mitmproxy with the mailproxy addons, listening at `config.http.listen`.

    `tls` chooses which HTTPS tunnels are decrypted (see addon.TlsPolicy), `[http] tls` when None;
    `confdir` is where mitmproxy keeps its CA; `mitm_options` are extra `name=value` mitmproxy
    option settings (as `mitmdump --set`), e.g. `ssl_verify_upstream_trusted_ca=/path/ca.pem`.
    """

    def __init__(
        self,
        config: Config,
        *,
        tls: TlsMode | None = None,
        confdir: Path | str | None = None,
        on_event: EventHook | None = None,
        db: TrackerDB | None = None,
        mitm_options: Sequence[str] = (),
    ) -> None:
        if tls is None:
            tls = cast(TlsMode, config.http.tls.value)
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        self.config = config
        self.state = ProxyState(config, db=db, tls=tls, on_event=on_event)
        self.confdir = str(confdir) if confdir is not None else DEFAULT_CONFDIR
        self.mitm_options = tuple(mitm_options)
        self._master: Master | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def listen_addrs(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs; empty before start and after stop."""
        if self._master is None:
            return []
        proxyserver = cast("Proxyserver | None", self._master.addons.get("proxyserver"))
        if proxyserver is None:
            return []
        return [(str(a[0]), int(a[1])) for a in proxyserver.listen_addrs()]

    async def start(self) -> None:
        """Bind and serve in the background. Raises MailproxyError if it cannot listen."""
        if self._master is not None:
            raise RuntimeError("HttpProxy already started")
        listen = self.config.http.listen
        opts = options.Options(listen_host=listen.host, listen_port=listen.port, confdir=self.confdir)
        master = Master(opts)
        ready = asyncio.Event()
        master.addons.add(*mitm_addons.default_addons())
        master.addons.add(_Ready(ready), *all_addons(self.state))
        if self.config.http.require_user:
            # mitmproxy's proxyauth addon issues the 407 challenge and strips the header; "any"
            # accepts every password, since the name only picks settings (see addon.UserChallenge).
            # Before mitm_options, so `--set proxyauth=@htpasswd` can still make it check them.
            opts.update(proxyauth="any")
            if not self.config.users:
                logger.warning(
                    "[http] require_user is on but there are no [users] tables: clients are asked "
                    "for a user name that selects nothing (everyone gets the global settings)"
                )
        if self.mitm_options:
            try:
                opts.set(*self.mitm_options)
            except exceptions.OptionsError as exc:
                raise MailproxyError(f"invalid mitmproxy option: {exc}") from exc
        self._master = master
        # A task the object keeps a reference to, so it is never garbage-collected mid-run.
        self._task = asyncio.get_running_loop().create_task(master.run(), name="mitmproxy")
        waiter = asyncio.get_running_loop().create_task(ready.wait())
        await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            error = self._task.exception()
            self._master = self._task = None
            raise MailproxyError(f"the HTTP proxy stopped while starting: {error}")
        if not self.listen_addrs:
            await self.stop()
            raise MailproxyError(f"cannot listen on {listen} for the HTTP proxy (is the port in use?)")
        logger.info("HTTP proxy listening on %s (tls: %s)", self._describe(), self.state.tls)

    def _describe(self) -> str:
        return ", ".join(f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in self.listen_addrs)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The running mitmproxy task (done if mitmproxy stopped by itself)."""
        return self._task

    async def stop(self) -> None:
        """Close the listening socket and stop mitmproxy. Safe to call twice."""
        master, task = self._master, self._task
        if master is None or task is None:
            return
        proxyserver = cast("Proxyserver | None", master.addons.get("proxyserver"))
        if proxyserver is not None and not task.done():
            # Master.run does not close the listening sockets; an empty mode list does.
            await proxyserver.servers.update([])
        master.shutdown()
        try:
            await asyncio.wait_for(task, _STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("mitmproxy did not stop within %.0f s", _STOP_TIMEOUT)
        except Exception:
            logger.exception("mitmproxy stopped with an error")
        finally:
            self._master = self._task = None
        logger.info("HTTP proxy stopped")


def ca_info(confdir: Path | str | None = None) -> str:
    """Where the mitmproxy CA certificate is and how to install it for Thunderbird."""
    folder = Path(confdir if confdir is not None else DEFAULT_CONFDIR).expanduser()
    cert = folder / "mitmproxy-ca-cert.pem"
    if cert.is_file():
        where = f"The mitmproxy CA certificate is {cert}"
    else:
        where = (
            f"The mitmproxy CA certificate will be {cert}; it is created the first time the proxy "
            "starts (run `mailproxy run` once)"
        )
    return "\n".join(
        [
            where + ".",
            f"Never share {folder / 'mitmproxy-ca.pem'}: it holds the CA's private key.",
            "",
            "Without it, HTTPS images pass through untouched and only known tracker hosts are",
            "blocked. To let mailproxy apply DNT/GPC, strip cookies and block tracking URLs over",
            "HTTPS too, make Thunderbird trust the certificate:",
            "  1. Settings > Privacy & Security > Security > Certificates > Manage Certificates.",
            "  2. Authorities tab > Import..., choose the file above.",
            '  3. Tick "Trust this CA to identify websites", then OK.',
            "Managed installs: the enterprise policy Certificates.Install with that file.",
            "",
            "Then point Thunderbird's proxy at the [http] listen address (Settings > General >",
            "Network & Disk Space > Settings..., Manual proxy configuration, HTTP proxy, and",
            '"Also use this proxy for HTTPS").',
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the HTTP half alone: `python -m mailproxy.http.server -c CONFIG`."""
    from mailproxy.runner import run  # the runner imports this module

    p = argparse.ArgumentParser(prog="python -m mailproxy.http.server")
    p.add_argument("-c", "--config", help="TOML configuration file (default: built-in defaults)")
    p.add_argument("--tls", choices=TLS_MODES, help="which tunnels to decrypt (default: [http] tls)")
    p.add_argument("--confdir", help=f"mitmproxy folder with the CA (default {DEFAULT_CONFDIR})")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a mitmproxy option")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
        if config.imap.enabled:
            config = _http_only(config)
        asyncio.run(
            run(config, tls=cast("TlsMode | None", args.tls), confdir=args.confdir, mitm_options=args.set)
        )
    except MailproxyError as exc:
        print(f"mailproxy: {exc}", file=sys.stderr)
        return 2
    return 0


def _http_only(config: Config) -> Config:
    from dataclasses import replace

    return replace(config, imap=replace(config.imap, enabled=False))


if __name__ == "__main__":
    sys.exit(main())
