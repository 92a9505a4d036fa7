# syntax = docker/dockerfile:1.7
# Continuation lines join into one; comment lines inside an instruction
# are dropped; an empty continuation line gives docker's warning.
FROM alpine

RUN apk add \
    curl \
# a comment inside the instruction
    git
  # an indented comment
ENV A=1 \
    B=2
RUN echo a \

    b
LABEL multi="line \
value"
env LEGACY value with spaces
