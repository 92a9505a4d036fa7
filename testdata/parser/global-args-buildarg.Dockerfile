# The same file as global-args, built with --build-arg BASE=debian
# UNDECLARED=x: BASE overrides the default and IMAGE, built from it,
# follows; UNDECLARED has no global ARG, so FROM does not see it.
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
