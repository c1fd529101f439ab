"""Usage texts res_agi prints in the ``520-`` block, as recorded from Asterisk 22.10.1 (errors.log).

DocBook tags are left in, exactly as Asterisk sends them. Commands not recorded there get a
one-line synopsis (``RECORDED`` tells which are which)."""

from __future__ import annotations

RECORDED: dict[str, tuple[str, ...]] = {
    'get data': (
        'Stream the given <replaceable>file</replaceable>, and receive DTMF data.',
        'Returns the digits received from the channel at the other end.',
    ),
    'stream file': (
        'Send the given file, allowing playback to be interrupted by the given digits, if any. Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was disconnected. If musiconhold is playing before calling stream file it will be automatically stopped and will not be restarted after completion.',
        'It sets the following channel variables upon completion:',
        '<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.',
        '    <value>SUCCESS</value>',
        '    <value>FAILED</value>',
    ),
    'get variable': (
        'Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns <literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable in parentheses.',
        'Example return code: 200 result=1 (testvariable)',
    ),
    'set variable': (
        'Sets a variable to the current channel.',
    ),
    'wait for digit': (
        'Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if no digit is received in the timeout, or the numerical value of the ascii of the digit if one is received. Use <literal>-1</literal> for the <replaceable>timeout</replaceable> value if you desire the call to block indefinitely.',
    ),
    'say number': (
        'Say a given number, returning early if any of the given DTMF digits are received on the channel.  Returns <literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical value of the digit if one was pressed or <literal>-1</literal> on error/hangup.',
    ),
    'exec': (
        'Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>.',
        'Returns whatever the <replaceable>application</replaceable> returns, or <literal>-2</literal> on failure to find <replaceable>application</replaceable>.',
        '<note>NOTE:</note> exec does not evaluate dialplan functions and variables unless it is explicitly enabled by setting the <variable>AGIEXECFULL</variable> variable to <literal>yes</literal>.',
    ),
    'gosub': (
        'Cause the channel to execute the specified dialplan subroutine, returning to the dialplan with execution of a Return().',
    ),
}

SYNOPSIS: dict[str, tuple[str, ...]] = {
    "answer": ("Answers channel if not already in answer state. Returns <literal>-1</literal> on channel failure, or <literal>0</literal> if successful.",),
    "channel status": ("Returns the status of the specified <replaceable>channelname</replaceable>. If no channel name is given then returns the status of the current channel.",),
    "get full variable": ("Evaluates the given <replaceable>expression</replaceable> against the channel specified by <replaceable>channelname</replaceable>, or the current channel if channelname is not provided.",),
    "record file": ("Record to a file until a given dtmf digit in the sequence is received. Returns <literal>-1</literal> on hangup or error.",),
    "say digits": ("Say a given digit string, returning early if any of the given DTMF digits are received on the channel.",),
    "set music": ("Enables/Disables the music on hold generator. If <replaceable>class</replaceable> is not specified, then the <literal>default</literal> music on hold class will be used.",),
    "verbose": ("Sends <replaceable>message</replaceable> to the console via verbose message system. <replaceable>level</replaceable> is the verbose level (1-4).",),
    "hangup": ("Hangs up the specified channel. If no channel name is given, hangs up the current channel",),
}


def usage_lines(key: str) -> tuple[str, ...]:
    return RECORDED.get(key) or SYNOPSIS.get(key) or ("No usage available.",)
