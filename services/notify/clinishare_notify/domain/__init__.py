"""Pure rules, no I/O: who hears of an event (recipients), what they are told (messages), and when an
e-mail is sent or retried (delivery)."""
