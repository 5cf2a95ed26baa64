@echo off
rem Double-click to install the LKJam control surface into Ableton Live's User Library
rem (Documents\Ableton\User Library\Remote Scripts). Same as `lkjam install`.
rem Extra arguments (e.g. --uninstall or --dest PATH) are passed through from a console.
cd /d "%~dp0"
where py >nul 2>nul
if %errorlevel%==0 (
  py -3 install.py %*
) else (
  where python >nul 2>nul
  if errorlevel 1 (
    echo Python 3 was not found. Install it from https://www.python.org and run this again.
    pause
    exit /b 1
  )
  python install.py %*
)
set status=%errorlevel%
echo.
pause
exit /b %status%
