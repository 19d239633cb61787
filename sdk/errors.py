"""The one error hierarchy of xinfeng.

Every verifier raises a subclass of :class:`XinfengError`. Each class carries
a stable machine ``code`` that the server puts into HTTP error bodies; the
message is short and never contains keys, tokens, allow-lists or plaintext.
"""

from __future__ import annotations


class XinfengError(Exception):
    """Base of every error xinfeng raises on purpose."""

    code = "error"
    status = 400

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


class CryptoError(XinfengError):
    """A cryptographic operation failed."""

    code = "crypto_error"


class InvalidKey(CryptoError):
    """A key has the wrong length, encoding, or is not a valid curve point."""

    code = "invalid_key"


class InvalidSignature(CryptoError):
    """The signature does not verify."""

    code = "invalid_signature"


class DecryptionFailed(CryptoError):
    """The ciphertext could not be decrypted."""

    code = "decryption_failed"


class EnvelopeError(XinfengError):
    """The envelope is malformed or does not authenticate."""

    code = "bad_envelope"


class ProtocolError(XinfengError):
    """The request does not follow the xinfeng protocol."""

    code = "bad_request"


class PayloadTooLarge(ProtocolError):
    """The request body is larger than the protocol allows."""

    code = "payload_too_large"
    status = 413


class TokenInvalid(XinfengError):
    """The embed token is not valid."""

    code = "token_invalid"
    status = 401


class LicenseError(XinfengError):
    """The license does not allow this use."""

    code = "license_invalid"
    status = 403


class LicenseExpired(LicenseError):
    """The license is outside its validity window."""

    code = "license_expired"


class LicenseSuspended(LicenseError):
    """The license is suspended."""

    code = "license_suspended"


class LicenseRevoked(LicenseError):
    """The license has been revoked."""

    code = "license_revoked"


class OriginDenied(LicenseError):
    """The embedding origin is not licensed."""

    code = "origin_denied"


class ProductDenied(LicenseError):
    """The product is not licensed or not available."""

    code = "product_denied"


class LicenseFrozen(LicenseError):
    """The license is temporarily frozen."""

    code = "license_frozen"


class RateLimited(XinfengError):
    """Too many requests; try again later."""

    code = "rate_limited"
    status = 429

    def __init__(self, retry_after: int = 1, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class SessionInvalid(XinfengError):
    """The session is unknown, expired or the request is not authentic."""

    code = "session_invalid"
    status = 401


class ReplayDetected(SessionInvalid):
    """The request counter was already used."""

    code = "replay"


class StorageUnavailable(XinfengError):
    """Storage is unavailable; the server fails closed."""

    code = "unavailable"
    status = 503
