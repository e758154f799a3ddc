"""Pure decision logic of the certification suites: what to expect, and how to judge what
the hosts reported. Suites fetch text through fixtures and hand it here."""
