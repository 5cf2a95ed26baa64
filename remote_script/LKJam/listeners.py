"""One registry for every Live listener the script adds, with paired removal.

Handlers never call add_*_listener themselves: they go through `ListenerRegistry.add`,
which records (owner, subject, property, callback). `remove_owner` drops everything a
handler added when its Live object stops mattering; `clear` (called from `disconnect`)
drops the rest, so nothing stays attached to Live after the script goes away.
"""

from typing import Any, Callable, Dict, List, Tuple

Entry = Tuple[Any, Any, str, Callable[[], None]]  # (owner, subject, property, callback)


class ListenerRegistry(object):
    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        # (id(owner), property) -> entries. Live hands out a new wrapper object on every
        # property access, so subjects are told apart with ==, never by identity.
        self._entries: Dict[Tuple[int, str], List[Entry]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    def add(self, owner: Any, subject: Any, prop: str, callback: Callable[[], None]) -> bool:
        """Listen to `subject.prop`; adding the same (owner, subject, prop) replaces it.

        Returns False when the subject has no such listenable property (e.g. Live 11
        has no scale_mode), so callers can probe optional properties safely.
        """
        adder = getattr(subject, "add_%s_listener" % prop, None)
        if adder is None:
            return False
        entries = self._entries.setdefault((id(owner), prop), [])
        for entry in entries:
            if entry[1] == subject:
                entries.remove(entry)
                self._detach(entry)
                break
        checker = getattr(subject, "%s_has_listener" % prop, None)
        # Live raises if the same callback is connected twice; never do that.
        if checker is None or not checker(callback):
            adder(callback)
        entries.append((owner, subject, prop, callback))
        return True

    def remove_owner(self, owner: Any) -> None:
        """Remove every listener `owner` added."""
        for key in [k for k in self._entries if k[0] == id(owner)]:
            for entry in self._entries.pop(key):
                self._detach(entry)

    def clear(self) -> None:
        """Remove every listener this registry added."""
        entries, self._entries = self._entries, {}
        for group in entries.values():
            for entry in group:
                self._detach(entry)

    def _detach(self, entry: Entry) -> None:
        _, subject, prop, callback = entry
        try:
            checker = getattr(subject, "%s_has_listener" % prop)
            if checker(callback):
                getattr(subject, "remove_%s_listener" % prop)(callback)
        except Exception as exc:  # a deleted Live object: its listeners are gone with it
            self._log("listener %s already gone (%s)" % (prop, exc))
