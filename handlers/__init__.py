"""Thin Tornado handlers: each connects a request to the hub and delegates."""
