"""Background work fed from the database: subscription notifications from the outbox, and bulk exports."""
