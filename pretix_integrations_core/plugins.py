"""What the suite's plugins share about being enabled in pretix."""


def enable_for_organizer(app_name, event_or_organizer):
    """
    Our plugins are "event and organiser" (hybrid) plugins: their organiser settings page needs pretix's
    organiser-level plugin support, and pretix runs their event signals only when the plugin is on for the event
    *and* its organiser. pretix's event plugin page enables the organiser too; this does the same when code enables
    the plugin on an event (``event.enable_plugin(...)`` from an API client, the shell or the tests).
    Call it from ``PluginConfig.installed``.
    """
    from pretix.base.models import Event

    if isinstance(event_or_organizer, Event):
        organizer = event_or_organizer.organizer
        if app_name not in organizer.get_plugins():
            organizer.enable_plugin(app_name)
            organizer.save(update_fields=["plugins"])
