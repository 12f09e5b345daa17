"""Alerts: rules over committed readings and machine states, their lifecycle, and notifiers."""
