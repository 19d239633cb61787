"""Data products under review: the registry's model and its rules.

The provider registers each product before it may circulate: its id,
name, category, classification grade, data identity identifier, data source
and owner. A product moves through these states::

    draft --submit--> submitted --approve--> approved --retire--> retired
      ^                   |
      |                reject
      |                   v
      +------edit------ rejected

Approval follows the two-person rule: nobody approves or rejects a product
they submitted. A grade 3 (core) product needs two distinct approvers; grade
1 and 2 need one. A rejected product returns to draft only by being edited,
and is then submitted again as a new revision: approvals never carry over
from one revision to the next. Retired is final; only approved products can
be licensed or served.

Every transition here is a pure function from one :class:`RegisteredProduct`
to the next; persistence and audit events belong to the server.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from typing import Any

from xinfeng.sdk.errors import ProductDenied, XinfengError

MAX_TEXT_LENGTH = 256
MAX_REASON_LENGTH = 1024
PRODUCT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ACTOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
IDENTIFIER_RE = re.compile(r"XF-([0-9]{6})-([0-9]{2})-([0-9]{6})-([0-9X])")
EDITABLE_FIELDS = ("name", "category", "grade", "identifier", "source", "owner")

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class ProductError(XinfengError):
    """The product description is malformed."""

    code = "product_invalid"
    status = 400


class ProductNotFound(XinfengError):
    """There is no product with that id."""

    code = "product_not_found"
    status = 404


class ProductConflict(XinfengError):
    """The product id or identifier is taken, or the product changed meanwhile."""

    code = "product_conflict"
    status = 409


class ReviewRefused(XinfengError):
    """The review rules do not allow this decision."""

    code = "review_refused"
    status = 409


class Grade(enum.IntEnum):
    """Classification grade: how much harm misuse of the data could do."""

    GENERAL = 1
    IMPORTANT = 2
    CORE = 3


class ProductState(enum.StrEnum):
    """Where a product stands in review."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETIRED = "retired"


REQUIRED_APPROVALS = {Grade.GENERAL: 1, Grade.IMPORTANT: 1, Grade.CORE: 2}


# -- the data identity identifier ----------------------------------------------


def mod11_2_check(digits: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a string of decimal digits.

    The same scheme as the last character of a PRC resident identity number
    (GB 11643) and of an ORCID iD: ``0``-``9`` or ``X`` for ten.

    Raises:
        ValueError: ``digits`` is empty or not all ASCII digits.
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError("expected decimal digits")
    total = 0
    for digit in digits:
        total = (total + int(digit)) * 2 % 11
    check = (12 - total) % 11
    return "X" if check == 10 else str(check)


def make_identifier(region: str, category: str, serial: int) -> str:
    """Build ``XF-<region>-<category>-<serial>-<check>``.

    ``region`` is a six-digit GB/T 2260 administrative division code (the
    first two digits a province code, 11 to 82), ``category`` a two-digit
    data category code (01 to 99), ``serial`` 1 to 999999.

    Raises:
        ProductError: a part is out of range.
    """
    if type(serial) is not int or not 0 < serial <= 999_999:
        raise ProductError("serial must be 1 to 999999")
    body = f"{region}-{category}-{serial:06d}"
    return parse_identifier(f"XF-{body}-{mod11_2_check(body.replace('-', ''))}")


def parse_identifier(text: str) -> str:
    """Check a data identity identifier; return it unchanged.

    Raises:
        ProductError: wrong format, a part out of range, or a wrong check
            character.
    """
    match = IDENTIFIER_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ProductError("identifier must look like XF-440000-01-000001-6")
    region, category, serial, check = match.groups()
    if not 11 <= int(region[:2]) <= 82:
        raise ProductError("identifier region is not a GB/T 2260 code")
    if category == "00" or serial == "000000":
        raise ProductError("identifier category and serial start at 01 and 000001")
    if mod11_2_check(region + category + serial) != check:
        raise ProductError("identifier check character is wrong")
    return text


def identifier_serial(identifier: str) -> int:
    """The serial number inside a valid identifier."""
    return int(parse_identifier(identifier).split("-")[3])


# -- the product ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RegisteredProduct:
    """A product in the registry. Construction validates every field.

    ``revision`` counts edits; ``approvals`` are the reviewers who approved
    the current revision; ``submitted_by`` is who submitted it.

    Raises:
        ProductError: a field is empty, malformed or out of range.
    """

    product_id: str
    name: str
    category: str
    grade: Grade
    identifier: str
    source: str
    owner: str
    state: ProductState = ProductState.DRAFT
    submitted_by: str | None = None
    approvals: tuple[str, ...] = ()
    revision: int = 1

    def __post_init__(self) -> None:
        _check_product_id(self.product_id)
        for name in ("name", "category", "source", "owner"):
            _check_text(name, getattr(self, name), MAX_TEXT_LENGTH)
        self._set("grade", _grade(self.grade))
        parse_identifier(self.identifier)
        self._set("state", parse_state(self.state))
        if self.submitted_by is not None:
            check_actor(self.submitted_by)
        self._set("approvals", tuple(check_actor(a) for a in self.approvals))
        if type(self.revision) is not int or self.revision < 1:
            raise ProductError("revision must be a positive integer")

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    @property
    def required_approvals(self) -> int:
        return REQUIRED_APPROVALS[self.grade]

    def to_json(self) -> dict[str, Any]:
        """The product as plain JSON values."""
        values = dataclasses.asdict(self)
        values["grade"] = int(self.grade)
        values["state"] = str(self.state)
        values["approvals"] = list(self.approvals)
        values["required_approvals"] = self.required_approvals
        return values


def register(fields: Mapping[str, Any]) -> RegisteredProduct:
    """A new draft product from ``fields`` (the editable fields plus the id).

    Raises:
        ProductError: a field is missing, unknown or malformed.
    """
    expected = {"product_id", *EDITABLE_FIELDS}
    if set(fields) != expected:
        raise ProductError("expected exactly: " + ", ".join(sorted(expected)))
    return RegisteredProduct(**fields)


def edit(product: RegisteredProduct, changes: Mapping[str, Any]) -> RegisteredProduct:
    """Change a draft or rejected product; the result is a new draft revision.

    Raises:
        ProductError: a change names an unknown or fixed field, or is malformed.
        ReviewRefused: the product is under review, approved or retired.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown or not changes:
        raise ProductError("editable fields: " + ", ".join(EDITABLE_FIELDS))
    _require_state(product, ProductState.DRAFT, ProductState.REJECTED)
    return dataclasses.replace(
        product,
        **changes,
        state=ProductState.DRAFT,
        submitted_by=None,
        approvals=(),
        revision=product.revision + 1,
    )


def submit(product: RegisteredProduct, submitter: str) -> RegisteredProduct:
    """Submit a draft for review.

    Raises:
        ReviewRefused: the product is not a draft (a rejected product must be
            edited first).
    """
    _require_state(product, ProductState.DRAFT)
    return dataclasses.replace(
        product, state=ProductState.SUBMITTED, submitted_by=check_actor(submitter)
    )


def approve(product: RegisteredProduct, reviewer: str) -> RegisteredProduct:
    """Record one approval; the product is approved once it has enough.

    Raises:
        ReviewRefused: the product is not submitted, the reviewer submitted
            it, or already approved this revision.
    """
    _require_reviewer(product, reviewer)
    if reviewer in product.approvals:
        raise ReviewRefused("this reviewer already approved this revision")
    approvals = (*product.approvals, reviewer)
    done = len(approvals) >= product.required_approvals
    state = ProductState.APPROVED if done else ProductState.SUBMITTED
    return dataclasses.replace(product, approvals=approvals, state=state)


def reject(product: RegisteredProduct, reviewer: str) -> RegisteredProduct:
    """Reject a submitted product; it can be edited and submitted again.

    Raises:
        ReviewRefused: the product is not submitted, or the reviewer
            submitted it.
    """
    _require_reviewer(product, reviewer)
    return dataclasses.replace(product, state=ProductState.REJECTED, approvals=())


def retire(product: RegisteredProduct, actor: str) -> RegisteredProduct:
    """Take an approved product out of circulation, for good.

    Raises:
        ReviewRefused: the product is not approved.
    """
    check_actor(actor)
    _require_state(product, ProductState.APPROVED)
    return dataclasses.replace(product, state=ProductState.RETIRED)


def require_licensable(product: RegisteredProduct) -> None:
    """Raise :class:`ProductDenied` unless ``product`` is approved."""
    if product.state is not ProductState.APPROVED:
        raise ProductDenied(f"product {product.product_id} is not approved")


def check_actor(name: str) -> str:
    """Check a person's or service's name as recorded in decisions.

    Raises:
        ProductError: empty, longer than 64, or other than letters, digits
            and ``. _ @ -``.
    """
    if not isinstance(name, str) or not ACTOR_RE.fullmatch(name):
        raise ProductError("names are 1-64 of A-Z a-z 0-9 . _ @ -")
    return name


def check_reason(reason: str) -> str:
    """Check the reason given for a decision.

    Raises:
        ProductError: empty, too long or holding control characters.
    """
    _check_text("reason", reason, MAX_REASON_LENGTH)
    return reason


def _require_reviewer(product: RegisteredProduct, reviewer: str) -> None:
    check_actor(reviewer)
    _require_state(product, ProductState.SUBMITTED)
    if reviewer == product.submitted_by:
        raise ReviewRefused("a reviewer cannot decide on their own submission")


def _require_state(product: RegisteredProduct, *allowed: ProductState) -> None:
    if product.state not in allowed:
        names = " or ".join(str(s) for s in allowed)
        raise ReviewRefused(f"product is {product.state}, not {names}")


def _check_product_id(value: str) -> None:
    if not isinstance(value, str) or not PRODUCT_ID_RE.fullmatch(value):
        raise ProductError("product id must be 1-64 of A-Z a-z 0-9 _ -")


def _check_text(name: str, value: str, limit: int) -> None:
    if not isinstance(value, str) or not 0 < len(value.strip()) <= limit:
        raise ProductError(f"{name} must be non-empty text of at most {limit}")
    if _CONTROL_RE.search(value):
        raise ProductError(f"{name} must not hold control characters")


def _grade(value: object) -> Grade:
    if type(value) not in (int, Grade) or value not in (1, 2, 3):
        raise ProductError("grade must be 1 (general), 2 (important) or 3 (core)")
    return Grade(value)


def parse_state(value: object) -> ProductState:
    """The state named ``value``.

    Raises:
        ProductError: no state has that name.
    """
    try:
        return ProductState(str(value) if isinstance(value, str) else "")
    except ValueError:
        raise ProductError("unknown product state") from None
