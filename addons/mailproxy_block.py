"""Tracker blocking: tracker images get a transparent GIF, other tracker requests a 204, redirects
to trackers are cut, identifying parameters are removed from images when the policy says clean.

`mitmdump -s addons/mailproxy_block.py --set mailproxy_config=FILE [--set mailproxy_tls=MODE]`
(MODE defaults to the file's [http] tls; passthrough: do not decrypt HTTPS, refuse CONNECT to known
tracker hosts only).
"""

from mailproxy.http.addon import ConfigOption, ProxyState, TlsPolicy, TrackerBlock

_state = ProxyState()
addons = [ConfigOption(_state), TrackerBlock(_state), TlsPolicy(_state)]
