"""The template catalog and its rendering (Jinja2): a subject, a plain-text and an HTML body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from app.modules.notifications.interface import ContextValue, TemplateName
from app.platform import faults

# The workshop's "bug in the notification logic": the receipt template fails to render.
RECEIPT_RENDER_FAILS = faults.declare(
    "notifications.receipt_render_fails",
    "rendering the order receipt raises, as a bug in the notification logic would",
)

# Optional emails a user may turn off, by category. Templates without a category (account
# and security mail, receipts) are always sent.
OPTIONAL_CATEGORIES: dict[str, str] = {
    "product_updates": "News about new features and changes to the product",
}


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    name: TemplateName
    category: str | None  # an optional-email category, or None: always sent


CATALOG: dict[str, TemplateSpec] = {
    "welcome": TemplateSpec("welcome", None),
    "message": TemplateSpec("message", None),
    "product_update": TemplateSpec("product_update", "product_updates"),
    "verify_email": TemplateSpec("verify_email", None),
    "password_reset": TemplateSpec("password_reset", None),
    "order_receipt": TemplateSpec("order_receipt", None),
    "payment_failed": TemplateSpec("payment_failed", None),
    "refund_issued": TemplateSpec("refund_issued", None),
}


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    """Renders ``templates/<name>/{subject.txt,body.txt,body.html}``; HTML is autoescaped."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("app.modules.notifications", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            # A template that needs a value the caller did not give fails loudly, not blankly.
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, template: str, context: Mapping[str, ContextValue]) -> Rendered:
        if template not in CATALOG:
            raise KeyError(f"no notification template {template!r}")
        if template == "order_receipt" and RECEIPT_RENDER_FAILS.hits():
            raise RuntimeError("injected fault: notifications.receipt_render_fails")
        values = dict(context)
        subject = self.env.get_template(f"{template}/subject.txt").render(values)
        return Rendered(
            subject=" ".join(subject.split()),
            text=self.env.get_template(f"{template}/body.txt").render(values),
            html=self.env.get_template(f"{template}/body.html").render(values),
        )


RENDERER = Renderer()
