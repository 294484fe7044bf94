"""Python conveniences over the generated module: presentation only, no
SDK logic (that stays in Rust)."""

import enum


def _record_repr(self):
    fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
    return f"{type(self).__name__}({fields})"


def record_classes(generated):
    """The generated record classes: plain data classes passed by value
    (not objects behind a handle, enums, errors or callback interfaces)."""
    found = []
    for name in generated.__all__:
        cls = getattr(generated, name)
        if not isinstance(cls, type) or issubclass(cls, (Exception, enum.Enum)):
            continue
        # Objects live behind a Rust handle; callback interfaces are Protocols.
        if "_handle" in getattr(cls, "__annotations__", {}) or getattr(cls, "_is_protocol", False):
            continue
        if not hasattr(generated, f"_UniffiFfiConverterType{name}"):
            continue
        if "__str__" in vars(cls):
            found.append(cls)
    return found


def add_record_reprs(generated):
    """``repr`` (and ``str``) of a record show its fields, strings quoted
    (uniffi gives an unquoted ``str`` only), so
    lists of records print readably in a REPL or a notebook."""
    for cls in record_classes(generated):
        cls.__repr__ = cls.__str__ = _record_repr


def make_closeable(client_class, generated):
    """``close()`` releases the native client (its SQLite connection closes
    once no call is running on it), and the class becomes a context manager.
    A closed client raises ``ValueError`` on any call, as a closed file does."""
    free = generated._UniffiLib.uniffi_fedmr_ffi_fn_free_fedmrclient
    clone = client_class._uniffi_clone_handle

    def close(self):
        """Releases the native client; calls after this raise ValueError."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            generated._uniffi_rust_call(free, handle)

    def checked_clone(self):
        if getattr(self, "_handle", None) is None:
            raise ValueError("this FedmrClient is closed")
        return clone(self)

    def enter(self):
        return self

    def exit(self, *exc_info):
        self.close()
        return False

    client_class.close = close
    client_class._uniffi_clone_handle = checked_clone
    client_class.__enter__ = enter
    client_class.__exit__ = exit


def document_uniffi_classes(generated):
    """uniffi's own public classes come without a docstring."""
    generated.InternalError.__doc__ = (
        "A bug in the SDK: a Rust panic, caught at the boundary instead of "
        "crashing the process. Please report it with its message."
    )
