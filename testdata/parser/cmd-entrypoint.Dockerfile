# CMD and ENTRYPOINT in shell and exec form, and SHELL; none of them expand
# variables (the shell or the program does).
FROM alpine
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
CMD echo "$HOME" | tr a-z A-Z
CMD ["echo", "$HOME"]
ENTRYPOINT ["/docker-entrypoint.sh"]
ENTRYPOINT /bin/run --name $NAME
# Not valid JSON: docker takes it as the shell form.
CMD [echo, oops]
