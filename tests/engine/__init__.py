"""Engine tests: an in-process ``Runplane`` app on each store (``make_app``); races are
landed in their gap through ``Hooks`` and ``Gate``, never by sleeping."""
