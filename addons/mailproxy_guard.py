"""Refuse requests to private, loopback and link-local addresses ([http] allow_networks opens some).

`mitmdump -s addons/mailproxy_guard.py --set mailproxy_config=FILE`
"""

from mailproxy.http.addon import ConfigOption, NetworkGuard, ProxyState

_state = ProxyState()
addons = [ConfigOption(_state), NetworkGuard(_state)]
