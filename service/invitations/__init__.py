"""Asking a person to complete a measure: SDC Tasks, completion links, reminders and their delivery."""
