"""Receipts: tell each publisher which of its batches are committed."""

from hub.receipts.publisher import publish_receipts
from hub.receipts.tracker import ReceiptTracker

__all__ = ["ReceiptTracker", "publish_receipts"]
