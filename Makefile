# Shortcuts for the README's commands.
.PHONY: test demo bench
test:
	scripts/test.sh
demo:
	scripts/demo.sh
bench:
	scripts/bench.sh
