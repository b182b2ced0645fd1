"""Topic-based subscriptions (the R4 backport of R5 Subscriptions), everything about them in one place:

- ``topics``: the topics the service publishes, their filters, matching an event against them (pure);
- ``backport``: reading an R4 Subscription with the backport profile (pure);
- ``events``: the topic events a stored response raises, for the outbox (pure);
- ``notifications``: notification Bundles and status Parameters (pure);
- ``manage``: setting a Subscription up and changing it; $status and $events (use cases);
- ``delivery``: matching outbox events to subscriptions and posting notifications (the worker's use case).
"""
