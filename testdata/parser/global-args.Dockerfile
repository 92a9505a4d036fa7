# Global ARGs feed FROM; a default may use an earlier global ARG. An ARG
# without a value inside a stage inherits the global one at build time (the
# executor's business: here it is just declared).
ARG BASE=alpine
ARG TAG=3.20
ARG IMAGE=${BASE}:${TAG}
ARG UNSET
FROM $IMAGE AS first
ARG TAG
RUN echo $TAG

FROM ${BASE}:${UNSET:-latest}
# $UNDECLARED is neither a global ARG nor predefined: docker warns
# (UndefinedArgInFrom) and expands it to nothing.
FROM busybox${UNDECLARED}
