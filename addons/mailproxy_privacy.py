"""DNT / Sec-GPC as configured, no Cookie or Referer sent, no Set-Cookie accepted.

`mitmdump -s addons/mailproxy_privacy.py --set mailproxy_config=FILE` ([privacy] and [users]).
"""

from mailproxy.http.addon import ConfigOption, PrivacyHeaders, ProxyState

_state = ProxyState()
addons = [ConfigOption(_state), PrivacyHeaders(_state)]
