"""The event bus: one interface, a RabbitMQ implementation and an in-memory one."""

from clinishare_shared.bus.base import EventBus, Handler, PublishFailed, topic_matches
from clinishare_shared.bus.memory import InMemoryBus

__all__ = ["EventBus", "Handler", "InMemoryBus", "PublishFailed", "topic_matches"]
