# SPDX-License-Identifier: MIT
# Convenience targets; ./make.sh is the front door (works without make).
.PHONY: demo test bench format
demo:
	./make.sh demo
test:
	./make.sh test
bench:
	./make.sh bench
format:
	clang-format -i include/weft/*.h src/*.c src/*.h src/unix/*.c \
		tests/*/*.c tests/support/*.h examples/*.c tools/*.c bench/*.c
