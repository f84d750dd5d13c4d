import sys

from worker_client.worker import main

sys.exit(main())
