"""Abandoned-cart retargeting: outbox -> dispatcher (business rules) -> personalised email -> sender.

``lib.sessions`` finds abandoned carts; the streaming sink writes them to the Delta outbox
(``outbox.py``). The dispatcher (``dispatcher.py``) reads the outbox without Spark, decides per cart
(``rules.py``), renders the email (``message.py``, ``templates/``) and sends it through an
``EmailSender`` (``senders.py``: SMTP locally, SendGrid on GCP). Every decision and every send
attempt is a row in a Delta table (``store.py``), so the same abandonment is never mailed twice.
"""
