"""Every way in, over ``core.accept_message()``: the SMPP service (``smpp``), the HTTP
messages API (``http``) and Kannel's sendsms (``sendsms``); the commit they share
(``commit``); receipts and status callbacks out (``receipts``, ``callbacks``); and the one
refusal table (``refusals``) that gives every refusal its SMPP command_status and its HTTP
problem type."""
