from glmchat.cli import main

raise SystemExit(main())
