"""Private machinery of the fake `Live`: observable values and listener lists.

Live's rule, kept here: adding a listener that is already connected, or removing one
that is not, raises RuntimeError. A test cannot pass by leaking or double-adding.
"""

# The Live version the fake pretends to be; the driver sets it. Names that only exist
# from Live 12 on (scale, root note...) vanish below 12, as in Live 11.
VERSION = [12, 1, 11]


def set_version(major, minor, bugfix):
    VERSION[:] = [major, minor, bugfix]


class LomObject(object):
    """Base of every fake Live object: a value store and listener lists."""

    _live12_names = frozenset()

    def __init__(self, **values):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_listeners", {})

    def __getattribute__(self, name):
        if name in type(self)._live12_names and VERSION[0] < 12:
            raise AttributeError(
                "%s has no attribute %r in Live %d" % (type(self).__name__, name, VERSION[0])
            )
        return object.__getattribute__(self, name)

    def _set(self, name, value):
        """Change a value as Live would, notifying its listeners when it changed."""
        old = self._values.get(name)
        self._values[name] = value
        if old != value:
            self._notify(name)

    def _notify(self, name):
        for callback in list(self._listeners.get(name, ())):
            callback()

    def _listener_count(self):
        return sum(len(v) for v in self._listeners.values())


def value(name, writable=False, live12=False):
    """A property backed by the value store; writable ones notify like Live's setters."""

    def get(self):
        return self._values[name]

    def put(self, new):
        self._set(name, new)

    return property(get, put if writable else None)


def observable(*names):
    """Class decorator adding add_/remove_/<name>_has_listener for each property name."""

    def decorate(cls):
        for name in names:
            setattr(cls, "add_%s_listener" % name, _adder(name))
            setattr(cls, "remove_%s_listener" % name, _remover(name))
            setattr(cls, "%s_has_listener" % name, _checker(name))
        return cls

    return decorate


def live12_only(*names):
    """Class decorator: hide these names (and their listener methods) below Live 12."""

    def decorate(cls):
        hidden = set(cls._live12_names)
        for name in names:
            hidden.update(
                (
                    name,
                    "add_%s_listener" % name,
                    "remove_%s_listener" % name,
                    "%s_has_listener" % name,
                )
            )
        cls._live12_names = frozenset(hidden)
        return cls

    return decorate


def _adder(name):
    def add(self, callback):
        callbacks = self._listeners.setdefault(name, [])
        if callback in callbacks:
            raise RuntimeError("Listener already connected")
        callbacks.append(callback)

    add.__name__ = "add_%s_listener" % name
    return add


def _remover(name):
    def remove(self, callback):
        callbacks = self._listeners.get(name, [])
        if callback not in callbacks:
            raise RuntimeError("Listener not connected")
        callbacks.remove(callback)

    remove.__name__ = "remove_%s_listener" % name
    return remove


def _checker(name):
    def has(self, callback):
        return callback in self._listeners.get(name, ())

    has.__name__ = "%s_has_listener" % name
    return has
