"""CDS Hooks for clinicians: what a person's measures say, as cards (pure: no Flask, no database)."""
