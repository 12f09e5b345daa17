"""Alerts: rules over committed readings, machine states and machine events, their lifecycle,
and notifiers."""
