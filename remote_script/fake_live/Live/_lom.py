"""Private machinery of the fake `Live`: handles, observable values, listener lists.

It keeps the rules of Live's object model that a script can trip over:
- adding a listener that is already connected, or removing one that is not, raises;
- changing the set from inside a notification raises RuntimeError, as Live does;
- every property access returns a fresh handle: `is` fails, `==` works (Live wraps its
  C++ objects anew each time);
- a deleted object compares equal to None and raises on any public access;
- names a Live version lacks are missing in that version (`since`).
"""

from typing import ClassVar, Dict, Tuple

# The Live version the fake pretends to be; FakeLive sets it (Live has one per process).
VERSION = [12, 1, 11]
NOTIFICATION_ERROR = (
    "Changes cannot be triggered by notifications. You will need to defer your response."
)
_notifying = [0]  # depth of listener callbacks running right now


def set_version(major, minor, bugfix):
    VERSION[:] = [major, minor, bugfix]


def at_least(major, minor):
    return (VERSION[0], VERSION[1]) >= (major, minor)


def guard():
    """Raise like Live when a listener tries to change the set."""
    if _notifying[0]:
        raise RuntimeError(NOTIFICATION_ERROR)


class _Core(object):
    """The state behind every handle of one Live object."""

    __slots__ = ("attrs", "deleted", "listeners", "values")

    def __init__(self, values):
        self.values = values
        self.listeners = {}
        self.attrs = {}  # private fake state (notes, start beat...), shared by handles
        self.deleted = False


class LomObject(object):
    """Base of every fake Live object: a handle onto a shared core."""

    _since: ClassVar[
        Dict[str, Tuple[int, int]]
    ] = {}  # public name -> (major, minor) of the first Live version that has it

    def __init__(self, **values):
        object.__setattr__(self, "_core", _Core(dict(values)))

    def __getattribute__(self, name):
        if name[0] != "_":
            core = object.__getattribute__(self, "_core")
            if core.deleted:
                raise RuntimeError("the %s was deleted" % type(self).__name__)
            since = type(self)._since.get(name)
            if since is not None and not at_least(*since):
                raise AttributeError(
                    "%s has no attribute %r in Live %d.%d"
                    % (type(self).__name__, name, VERSION[0], VERSION[1])
                )
        return object.__getattribute__(self, name)

    def __getattr__(self, name):
        attrs = object.__getattribute__(self, "_core").attrs
        if name in attrs:
            return attrs[name]
        raise AttributeError("%s has no attribute %r" % (type(self).__name__, name))

    def __setattr__(self, name, value):
        if name.startswith("_"):
            self._core.attrs[name] = value
        elif isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)  # read-only ones raise AttributeError
        else:
            raise AttributeError("%s has no attribute %r" % (type(self).__name__, name))

    def __eq__(self, other):
        if other is None:
            return self._core.deleted  # Live's liveobj_valid(obj) is `obj != None`
        return isinstance(other, LomObject) and other._core is self._core

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(id(self._core))

    @property
    def _values(self):
        return self._core.values

    @property
    def _listeners(self):
        return self._core.listeners

    def _handle(self):
        """A new handle onto the same object, as each property access in Live gives."""
        handle = object.__new__(type(self))
        object.__setattr__(handle, "_core", self._core)
        return handle

    def _set(self, name, value):
        """Change a value as Live would, notifying its listeners when it changed."""
        old = self._values.get(name)
        self._values[name] = value
        if old != value:
            self._notify(name)

    def _notify(self, name):
        _notifying[0] += 1
        try:
            for callback in list(self._listeners.get(name, ())):
                callback()
        finally:
            _notifying[0] -= 1

    def _delete(self):
        """The object is gone from the set: its listeners go with it; access raises."""
        self._core.listeners.clear()
        self._core.deleted = True

    def _listener_count(self):
        return sum(len(v) for v in self._listeners.values())


def fresh(value):
    """A value as Live returns it: new handles for objects, also inside tuples."""
    if isinstance(value, LomObject):
        return value._handle()
    if isinstance(value, tuple):
        return tuple(fresh(v) for v in value)
    return value


def value(name, writable=False):
    """A property backed by the value store; writable ones notify like Live's setters."""

    def get(self):
        return fresh(self._values[name])

    def put(self, new):
        guard()
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


def since(major, minor, *names):
    """Class decorator: these names (and their listener methods) appear in that version."""

    def decorate(cls):
        table = dict(cls._since)
        for name in names:
            for member in (
                name,
                "add_%s_listener" % name,
                "remove_%s_listener" % name,
                "%s_has_listener" % name,
            ):
                if hasattr(cls, member):
                    table[member] = (major, minor)
        cls._since = table
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
