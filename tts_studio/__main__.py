from tts_studio.cli import main

raise SystemExit(main())
