"""
Calendly in the CRM bridge: bookings become organiser-scoped prospects (issue 9).

- ``models``: the organiser's connection, prospects and their meetings;
- ``client``: Calendly's API over HTTP (OAuth through the core's token store, or a personal access token);
- ``connect``: connect (OAuth + PKCE + state) / disconnect, webhook subscription;
- ``sync`` / ``tasks``: the rolling-window sync and the upsert of one invitee; ``webhooks``: the signed receiver;
- ``views``, ``exporters``, ``notifications``, ``signals``: what the team sees.
"""
SERVICE = "Calendly"
