from cellviewer.cli import main

raise SystemExit(main())
