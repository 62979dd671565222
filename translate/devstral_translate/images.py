"""Which image URLs a request may hand to the backend (which fetches them itself): a policy
over the chat request's `image_url` parts, pure, so it is the same for every front protocol.

Inline `data:` images always pass; `file:` and addresses of this host or its network never do
unless the policy is "all". Host names are not resolved here (the backend resolves them):
a domain allow-list is the strict policy.
"""

import ipaddress

import msgspec

POLICIES = ("public", "https", "all")  # public: http(s) to public hosts; https: the same, https only

_messages = msgspec.json.Decoder(dict[str, msgspec.Raw])


class _Part(msgspec.Struct):
    type: str = ""
    image_url: object = None


class _Message(msgspec.Struct):
    content: msgspec.Raw = msgspec.Raw(b"null")  # parts decoded only when it is a list


_message_list = msgspec.json.Decoder(list[_Message])
_parts = msgspec.json.Decoder(list[_Part])
_PRIVATE_NAMES = ("localhost", ".localhost", ".local", ".internal")


def image_urls(body: bytes) -> list[str]:
    """The URLs of a chat request's image parts (a byte search first: none, no decoding)."""
    if body.find(b'"image_url"') == -1:
        return []
    try:
        raw = _messages.decode(body).get("messages")
        messages = _message_list.decode(raw) if raw is not None else []
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []  # a body the dialect refuses on its own
    out = []
    for m in messages:
        if memoryview(m.content)[:1] != b"[":
            continue
        try:
            parts = _parts.decode(m.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        for part in parts:
            image = part.image_url
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                out.append(url)
    return out


def refused(url: str, policy: str, domains: tuple[str, ...] = ()) -> str | None:
    """Why `url` may not go to the backend under `policy` (and the `domains` allow-list when
    it has any), or None."""
    if url[:5].lower() == "data:" or policy == "all":
        return None
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (("https",) if policy == "https" else ("http", "https")):
        return f"only {'https' if policy == 'https' else 'http(s)'} and data: image URLs are accepted"
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1].lower()
    host = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    if domains:
        if not any(host == d or host.endswith("." + d) for d in domains):
            return f"the image host {host!r} is not in images.allowed_domains"
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "" or host.endswith(_PRIVATE_NAMES) or host in ("localhost",) or "." not in host:
            return f"the image host {host!r} is this host or its network"
        return None
    if not ip.is_global or ip.is_multicast:
        return f"the image address {host} is private, loopback, link-local or reserved"
    return None
