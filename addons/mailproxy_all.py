"""Every mailproxy protection: `mitmdump -s addons/mailproxy_all.py --set mailproxy_config=FILE`.

Private-address guard, tracker blocking (per URL, per redirect hop, per CONNECT in host-level
mode), DNT / Sec-GPC, cookie and referrer stripping. The logic is in mailproxy.http.addon.
"""

from mailproxy.http.addon import ConfigOption, ProxyState, all_addons

_state = ProxyState()
addons = [ConfigOption(_state), *all_addons(_state)]
