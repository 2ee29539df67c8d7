from selfteach.cli import main

raise SystemExit(main())
