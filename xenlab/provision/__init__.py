"""Provisioning a lab the article's way: idempotent steps, a plan first, no data destroyed."""
