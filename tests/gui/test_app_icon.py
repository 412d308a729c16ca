"""The application icon (drawn by packaging/make_icon.py) is the window icon."""


def test_create_app_sets_the_window_icon(qapp):
    from cellviewer.core.resources import icon_path
    from cellviewer.gui.app import create_app

    app = create_app()
    assert icon_path() is not None
    assert not app.windowIcon().isNull()
    assert max(s.width() for s in app.windowIcon().availableSizes()) >= 64
    assert app.desktopFileName() == "cellviewer"
