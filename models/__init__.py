"""SQLAlchemy models: stores, subscriptions, billing cycles and charge attempts."""

from models.access import ApiKey, AuditEntry, Operator
from models.base import MAX_INTEGER, Base, UTCDateTime, utcnow
from models.billing import (
    CLAIMABLE_STATES,
    DUNNING_STATES,
    FINAL_STATES,
    BillingCycle,
    ChargeAttempt,
    CycleState,
    OutcomeClass,
)
from models.store import PLAN_QUOTAS, Store
from models.subscription import EndOfDunning, Subscription, SubscriptionStatus

__all__ = [
    "CLAIMABLE_STATES",
    "DUNNING_STATES",
    "FINAL_STATES",
    "MAX_INTEGER",
    "PLAN_QUOTAS",
    "ApiKey",
    "AuditEntry",
    "Base",
    "BillingCycle",
    "ChargeAttempt",
    "CycleState",
    "EndOfDunning",
    "Operator",
    "OutcomeClass",
    "Store",
    "Subscription",
    "SubscriptionStatus",
    "UTCDateTime",
    "utcnow",
]
