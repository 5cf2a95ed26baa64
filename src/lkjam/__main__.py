from lkjam.cli import main

raise SystemExit(main())
