"""Live.Application: the application object and its version."""

from . import _lom


class Application(_lom.LomObject):
    def get_major_version(self):
        return _lom.VERSION[0]

    def get_minor_version(self):
        return _lom.VERSION[1]

    def get_bugfix_version(self):
        return _lom.VERSION[2]

    def get_version_string(self):
        return "%d.%d.%d" % tuple(_lom.VERSION)

    def show_message(self, message):
        self._values["message"] = message


_APPLICATION = Application()


def get_application():
    return _APPLICATION
