"""Fakes for what the tests cannot reach, only at the HTTP boundary (Twilio's cloud)."""
